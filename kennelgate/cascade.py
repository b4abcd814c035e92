"""Two-tier cascade: a small, fast encoder answers when it is clearly sure; otherwise the frame
goes to a bigger encoder with its own gallery.

"Clearly sure" is the small tier's distance from its own decision boundary: the best species'
score minus that species' threshold. Near zero, a small change in the embedding flips the
answer, so those frames are routed. The routing margin is tuned on held-out gallery photos to
keep the cascade's open-set accuracy within ``tolerance`` of the big tier alone while routing as
few frames as possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from embedder.runtime import Encoder
from index.decision import Decider, Decision
from index.folders import OTHER


@dataclass
class Tier:
    encoder: Encoder
    decider: Decider

    def decide(self, images) -> list[Decision]:
        return self.decider.decide(self.encoder.run(self.encoder.preprocess(images)).vectors)


def boundary_margin(decisions: Sequence[Decision], thresholds: dict[str, float]) -> np.ndarray:
    """Per decision: best non-`other` species score minus its threshold (signed)."""
    out = np.empty(len(decisions), np.float64)
    for i, d in enumerate(decisions):
        species = next((n for n, _ in d.top if n != OTHER), None)
        if species is None or species not in thresholds:
            out[i] = -np.inf
            continue
        score = next(s for n, s in d.top if n == species)
        out[i] = score - thresholds[species]
    return out


def correct(truths: Sequence[str], decisions: Sequence[Decision], known: set[str]) -> np.ndarray:
    """Open-set correctness: a known animal accepted as itself, anything else rejected."""
    return np.array([
        (d.accepted and d.species == t) if t in known else not d.accepted for t, d in zip(truths, decisions)
    ])


def tune_margin(
    small_margin: np.ndarray, small_ok: np.ndarray, big_ok: np.ndarray, tolerance: float = 0.001
) -> tuple[float, float, float]:
    """Smallest routing margin whose cascade accuracy is within ``tolerance`` of the big tier.

    Returns ``(margin, cascade_accuracy, routed_fraction)`` on the tuning set.
    """
    target = big_ok.mean() - tolerance
    candidates = np.unique(np.concatenate([[0.0], np.abs(small_margin[np.isfinite(small_margin)])]))
    for m in candidates:  # ascending: the first that meets the target routes the fewest frames
        routed = np.abs(small_margin) < m
        acc = np.where(routed, big_ok, small_ok).mean()
        if acc >= target:
            return float(m), float(acc), float(routed.mean())
    return float("inf"), float(big_ok.mean()), 1.0


class Cascade:
    def __init__(self, small: Tier, big: Tier, margin: float) -> None:
        self.small, self.big, self.margin = small, big, margin
        self._thresholds = small.decider.thresholds

    def decide(self, images) -> tuple[list[Decision], np.ndarray]:
        """Decisions, and which frames went to the big tier."""
        first = self.small.decide(images)
        routed = np.abs(boundary_margin(first, self._thresholds)) < self.margin
        out: list[Decision] = list(first)
        if routed.any():
            idx = np.flatnonzero(routed)
            for i, d in zip(idx, self.big.decide([images[i] for i in idx])):
                out[i] = d
        return out, routed


def combine(small: Sequence[Decision], big: Sequence[Decision], routed: np.ndarray) -> list[Decision]:
    return [b if r else s for s, b, r in zip(small, big, routed)]


def summary(truths, decisions: Sequence[Decision], known: set[str], routed: Optional[np.ndarray] = None) -> dict:
    ok = correct(truths, decisions, known)
    kn = np.array([t in known for t in truths])
    closed = np.array([d.best == t for t, d in zip(truths, decisions)])
    wrong_open = np.array([d.accepted and d.species != t for t, d in zip(truths, decisions)])
    return {
        "open_set_accuracy": float(ok.mean()),
        "cat_dog_accuracy": float(closed[kn].mean()) if kn.any() else float("nan"),
        "wrong_accepts": float(wrong_open.mean()),
        "routed": float(routed.mean()) if routed is not None else None,
    }
