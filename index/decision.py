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

    def to_json(self) -> dict:
        """The wire form (``POST /v1/classify``); ``from_json`` reads it back."""
        return {"species": self.species, "score": round(self.score, 4), "accepted": self.accepted, "best": self.best,
                "breed": self.breed, "top": [[n, v] for n, v in self.top], "reason": self.reason}

    @classmethod
    def from_json(cls, a: dict) -> "Decision":
        """Raises KeyError, TypeError or ValueError on anything that is not a decision."""
        return cls(
            species=str(a["species"]), score=float(a["score"]), accepted=bool(a["accepted"]), breed=a.get("breed"),
            top=[(str(n), float(v)) for n, v in a.get("top", [])], reason=str(a.get("reason", "")), best=str(a.get("best", "")),
        )


class Decider:
    """Holds a gallery + calibration and answers ``decide(vectors)``."""

    def __init__(
        self,
        gallery: Gallery,
        calibration: Calibration,
        method: Method = "contrast",
        k: Optional[int] = None,
        reject_ambiguous: bool = False,
        top_n: int = 3,
        version: str = "",
        min_margin: float = 0.0,
        other_weight: Optional[float] = None,
    ) -> None:
        self.gallery = gallery
        self.calibration = calibration
        self.version = version  # the gallery version these answers come from (for the decision log)
        self.method = method
        self.k = k or calibration.k
        self.other_weight = calibration.other_weight if other_weight is None else other_weight
        self.thresholds = calibration.thresholds(method)
        self.reject_ambiguous = reject_ambiguous
        self.min_margin = min_margin  # the best species must beat the runner-up by this much
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
        names, scores = species_scores(self.gallery, vectors, self.method, self.k, self.other_weight)
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
        if len(order) > 1 and score - float(row[order[1]]) < self.min_margin:
            rival = names[order[1]]
            return Decision(
                OTHER, score, False, top=top, best=best,
                reason=f"{best} {score:.3f} too close to {rival} {float(row[order[1]]):.3f} (margin {self.min_margin:.3f})",
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
