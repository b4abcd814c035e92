"""Open-set thresholds calibrated from the gallery itself.

For each species, its photos are scored against the rest of its own photos with each photo's
whole twin group left out (near-duplicates, bursts and frames of one video are grouped by
embedding similarity), as a new photo would be scored; the threshold keeps ``target_accept``
of them. Plain leave-one-out would score a burst's frames against their own twins and promise
new photos far more than they get. When
photos are filed under ``other`` (explicit negatives), the threshold is raised, if needed, so
that at most ``target_far`` of them would be accepted as that species: safety wins over recall.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import BaseModel

from index.folders import OTHER
from index.gallery import Gallery
from index.scoring import (
    METHODS, OTHER_WEIGHT, Method, base_method, contrast, held_out_scores, species_scores, twin_groups,
)


class SpeciesCalibration(BaseModel):
    threshold: float
    threshold_accept: float  # from the species' own photos
    threshold_far: Optional[float] = None  # from photos filed under 'other'
    photos: int
    loo_accept_rate: float  # own photos (twin group held out) accepted as the species at ``threshold``
    other_accept_rate: Optional[float] = None  # 'other' photos accepted as the species
    groups: Optional[int] = None  # distinct scenes: twin groups among the photos
    twin_photos: Optional[int] = None  # photos with a near-twin among the others
    confused_with: Optional[str] = None  # the species its held-out photos most often match instead
    confused_rate: Optional[float] = None  # share of its held-out photos whose best match is another species


TWIN_COSINE = 0.9  # photos this similar are one scene (measured: a burst's frames ≥ 0.9; docs/admit.md)


class Calibration(BaseModel):
    k: int
    target_accept: float
    target_far: float
    twin_cosine: float = TWIN_COSINE
    min_margin: float = 0.0  # the decider's margin over the runner-up, counted in the predicted rates
    other_weight: float = OTHER_WEIGHT  # the contrast score's weight on 'other' (index.scoring)
    methods: dict[str, dict[str, SpeciesCalibration]]

    def thresholds(self, method: Method) -> dict[str, float]:
        return {s: c.threshold for s, c in self.methods[method].items()}


def scene_quantile(scores: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The score below which a share ``q`` of the scenes lie, each photo weighted (a burst of 50
    frames is one scene, not 50): the threshold that keeps ``1 - q`` of new scenes."""
    order = np.argsort(scores)
    cum = np.cumsum(weights[order]) / weights.sum()
    i = int(np.searchsorted(cum, q, side="left"))
    return float(scores[order][min(i, len(order) - 1)])


def held_out_matrix(
    gallery: Gallery, name: str, method: Method, k: int, twin_cosine: float = TWIN_COSINE,
    other_weight: float = OTHER_WEIGHT,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, scores, groups)``: scores of ``name``'s photos against every species, the own
    column with each photo's twin group held out (``name`` may be ``other``: its photos are then
    scored as unseen negatives, not against themselves)."""
    x = gallery.species[name].vectors
    groups = twin_groups(x, twin_cosine)
    base = base_method(method)
    names, scores = species_scores(gallery, x, base, k)
    scores[:, names.index(name)] = held_out_scores(gallery, name, base, k, groups)
    if method == "contrast":
        scores = contrast(names, scores, other_weight)
    return names, scores, groups


def calibrate_species(
    gallery: Gallery, name: str, method: Method, k: int, target_accept: float, target_far: float,
    twin_cosine: float = TWIN_COSINE, min_margin: float = 0.0, other_weight: float = OTHER_WEIGHT,
) -> SpeciesCalibration:
    names, scores, groups = held_out_matrix(gallery, name, method, k, twin_cosine, other_weight)
    me = names.index(name)
    own = scores[:, me]
    still_own = scores.argmax(1) == me
    runner_up = np.delete(scores, me, axis=1).max(1) if scores.shape[1] > 1 else np.full(len(own), -np.inf)
    clear = own - runner_up >= min_margin
    sizes = np.bincount(groups)
    thr_accept = scene_quantile(own, 1.0 / sizes[groups], 1.0 - target_accept)
    thr_far = other_rate = None
    if OTHER in gallery.species:
        # Each 'other' photo scored without its own twin group, as an unseen animal would be
        # (against itself it is always closest to 'other' and would never count).
        onames, oscores, _ = held_out_matrix(gallery, OTHER, method, k, twin_cosine, other_weight)
        neg = oscores[:, onames.index(name)]
        # Only negatives that would be classified as this species can be wrongly accepted as it.
        neg = np.where(oscores.argmax(1) == onames.index(name), neg, -np.inf)
        thr_far = float(np.quantile(neg, 1.0 - target_far, method="higher")) + 1e-6
    threshold = max(thr_accept, thr_far) if thr_far is not None and np.isfinite(thr_far) else thr_accept
    if OTHER in gallery.species:
        other_rate = float(np.mean(neg >= threshold))
    rivals = scores.argmax(1)[~still_own]
    confused = names[int(np.bincount(rivals).argmax())] if len(rivals) else None
    return SpeciesCalibration(
        groups=int(len(sizes)),
        twin_photos=int((sizes[groups] > 1).sum()),
        confused_with=confused,
        confused_rate=float(np.mean(~still_own)),
        threshold=threshold,
        threshold_accept=thr_accept,
        threshold_far=thr_far if thr_far is not None and np.isfinite(thr_far) else None,
        photos=len(own),
        loo_accept_rate=float(np.average(still_own & clear & (own >= threshold), weights=1.0 / sizes[groups])),
        other_accept_rate=other_rate,
    )


def calibrate(
    gallery: Gallery,
    k: int,
    target_accept: float,
    target_far: float,
    previous: Optional[Calibration] = None,
    changed: Optional[set[str]] = None,
    twin_cosine: float = TWIN_COSINE,
    min_margin: float = 0.0,
    other_weight: float = OTHER_WEIGHT,
) -> Calibration:
    """Thresholds for every species and method; species not in ``changed`` keep ``previous``."""
    reuse = (
        previous is not None
        and changed is not None
        and OTHER not in changed
        and (previous.k, previous.target_accept, previous.target_far, previous.twin_cosine, previous.min_margin,
             previous.other_weight) == (k, target_accept, target_far, twin_cosine, min_margin, other_weight)
    )
    methods: dict[str, dict[str, SpeciesCalibration]] = {}
    for method in METHODS:
        per: dict[str, SpeciesCalibration] = {}
        for name in gallery.names(include_other=False):
            if reuse and name not in changed and name in previous.methods.get(method, {}):
                per[name] = previous.methods[method][name]
            else:
                per[name] = calibrate_species(
                    gallery, name, method, k, target_accept, target_far, twin_cosine, min_margin, other_weight
                )
        methods[method] = per
    return Calibration(
        k=k, target_accept=target_accept, target_far=target_far, twin_cosine=twin_cosine, min_margin=min_margin,
        other_weight=other_weight, methods=methods,
    )
