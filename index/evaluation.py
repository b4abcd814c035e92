"""Metrics for a gallery + decisions on labelled test photos, closed- and open-set.

Test species absent from the gallery count as *unknown*: the right answer for them is ``other``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from index.decision import Decision
from index.folders import OTHER

UNKNOWN = "unknown"


@dataclass
class EvalResult:
    n_known: int
    n_unknown: int
    accuracy: float  # known photos whose best-matching species is right (closed set)
    open_accuracy: float  # known accepted as the right species + unknown rejected, over all
    known_accept_rate: float  # known photos accepted (as any species)
    wrong_accept_rate: float  # known photos accepted as the wrong species
    unknown_accept_rate: float  # unknown/other photos accepted as some kennel species
    unknown_reject_rate: float
    auroc: Optional[float]  # known vs unknown, on the best score
    per_species: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_labels: list[str] = field(default_factory=list)
    confusion_predicted: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        d = dict(self.__dict__)
        d.pop("worst")
        return d


def _auroc(pos: np.ndarray, neg: np.ndarray) -> Optional[float]:
    if len(pos) == 0 or len(neg) == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def evaluate(
    truths: Sequence[str],
    decisions: Sequence[Decision],
    gallery_species: Sequence[str],
    ids: Optional[Sequence[str]] = None,
    worst_n: int = 16,
) -> EvalResult:
    known_set = set(gallery_species) - {OTHER}
    truth = np.array([t if t in known_set else UNKNOWN for t in truths], dtype=object)
    pred = np.array([d.species for d in decisions], dtype=object)
    best = np.array([d.best for d in decisions], dtype=object)
    acc = np.array([d.accepted for d in decisions])
    score = np.array([d.score for d in decisions], dtype=np.float64)
    known = truth != UNKNOWN
    unk = ~known

    def rate(mask: np.ndarray) -> float:
        return float(mask.mean()) if mask.size else float("nan")

    correct_open = np.where(known, acc & (pred == truth), ~acc)
    per_species = {}
    for s in sorted(known_set):
        tp = np.sum(acc & (pred == s) & (truth == s))
        fp = np.sum(acc & (pred == s) & (truth != s))
        n = np.sum(truth == s)
        per_species[s] = {
            "photos": int(n),
            "precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
            "recall": float(tp / n) if n else float("nan"),
            "closed_set_accuracy": rate(best[truth == s] == s),
        }
    rows = sorted(known_set) + ([UNKNOWN] if unk.any() else [])
    cols = sorted(known_set) + [OTHER]
    confusion = [[int(np.sum((truth == r) & (pred == c))) for c in cols] for r in rows]
    # Worst errors first: wrong opens (most costly), then rejected knowns, by how sure we were.
    errors = [i for i in range(len(truth)) if not correct_open[i]]
    errors.sort(key=lambda i: (not acc[i], -score[i]))
    worst = [
        {
            "id": ids[i] if ids is not None else str(i),
            "truth": truths[i],
            "predicted": pred[i],
            "best": best[i],
            "score": float(score[i]),
            "reason": decisions[i].reason,
        }
        for i in errors[:worst_n]
    ]
    return EvalResult(
        n_known=int(known.sum()),
        n_unknown=int(unk.sum()),
        accuracy=rate(best[known] == truth[known]),
        open_accuracy=rate(correct_open),
        known_accept_rate=rate(acc[known]),
        wrong_accept_rate=rate(acc[known] & (pred[known] != truth[known])),
        unknown_accept_rate=rate(acc[unk]),
        unknown_reject_rate=rate(~acc[unk]),
        auroc=_auroc(score[known], score[unk]),
        per_species=per_species,
        confusion_labels=rows,
        confusion_predicted=cols,
        confusion=confusion,
        worst=worst,
    )
