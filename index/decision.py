"""Scores → decision: which species, or ``other``; fail closed on anything unclear."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from index.calibration import Calibration
from index.folders import OTHER
from index.gallery import Gallery
from index.scoring import Method, species_scores


@dataclass
class Decision:
    species: str  # the accepted species, or "other"
    score: float  # score of the best-matching species
    accepted: bool
    breed: Optional[str] = None
    top: list[tuple[str, float]] = field(default_factory=list)
    reason: str = ""
    best: str = ""  # best-matching species even when rejected (for logs and error analysis)


class Decider:
    """Holds a gallery + calibration and answers ``decide(vectors)``."""

    def __init__(
        self,
        gallery: Gallery,
        calibration: Calibration,
        method: Method = "knn",
        k: Optional[int] = None,
        reject_ambiguous: bool = False,
        top_n: int = 3,
        version: str = "",
    ) -> None:
        self.gallery = gallery
        self.version = version  # the gallery version these answers come from (for the decision log)
        self.method = method
        self.k = k or calibration.k
        self.thresholds = calibration.thresholds(method)
        self.reject_ambiguous = reject_ambiguous
        self.top_n = top_n
        self._breeds = {name: p.breed_prototypes() for name, p in gallery.species.items() if name != OTHER}

    def breed_of(self, species: str, vector: np.ndarray) -> tuple[Optional[str], float]:
        protos = self._breeds.get(species) or {}
        if not protos:
            return None, 0.0
        names = list(protos)
        sims = np.stack([protos[n] for n in names]) @ vector
        j = int(sims.argmax())
        return names[j], float(sims[j])

    def decide(self, vectors: np.ndarray, overrides: Optional[dict[str, float]] = None) -> list[Decision]:
        """Decisions for ``vectors``; ``overrides`` replaces calibrated thresholds (manual, per kennel)."""
        names, scores = species_scores(self.gallery, vectors, self.method, self.k)
        thresholds = {**self.thresholds, **overrides} if overrides else self.thresholds
        return [self._one(names, scores[i], vectors[i], thresholds) for i in range(len(vectors))]

    def _one(self, names: list[str], row: np.ndarray, vector: np.ndarray, thresholds: dict[str, float]) -> Decision:
        if not names:
            return Decision(OTHER, 0.0, False, reason="the gallery is empty")
        order = np.argsort(-row)
        top = [(names[j], round(float(row[j]), 4)) for j in order[: self.top_n]]
        best = names[order[0]]
        score = float(row[order[0]])
        if best == OTHER:
            return Decision(OTHER, score, False, top=top, best=best, reason="closest to photos filed under 'other'")
        thr = thresholds.get(best)
        if thr is None:
            return Decision(OTHER, score, False, top=top, best=best, reason=f"species {best!r} is not calibrated")
        if score < thr:
            return Decision(
                OTHER, score, False, top=top, best=best, reason=f"{best} score {score:.3f} below threshold {thr:.3f}"
            )
        if self.reject_ambiguous:
            rivals = [
                (names[j], float(row[j]))
                for j in order[1:]
                if names[j] not in (OTHER, best) and row[j] >= thresholds.get(names[j], np.inf)
            ]
            if rivals:
                r, s = rivals[0]
                return Decision(
                    OTHER, score, False, top=top, best=best,
                    reason=f"ambiguous: {best} {score:.3f} and {r} {s:.3f} both pass their thresholds",
                )
        breed, _ = self.breed_of(best, vector)
        return Decision(best, score, True, breed=breed, top=top, best=best, reason="accepted")
