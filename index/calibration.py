"""Open-set thresholds calibrated from the gallery itself.

For each species, its photos are scored leave-one-out against the rest of its own photos; the
threshold keeps ``target_accept`` of them. When
photos are filed under ``other`` (explicit negatives), the threshold is raised, if needed, so
that at most ``target_far`` of them would be accepted as that species: safety wins over recall.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import BaseModel

from index.folders import OTHER
from index.gallery import Gallery
from index.scoring import METHODS, Method, loo_scores, species_scores


class SpeciesCalibration(BaseModel):
    threshold: float
    threshold_accept: float  # from the species' own photos
    threshold_far: Optional[float] = None  # from photos filed under 'other'
    photos: int
    loo_accept_rate: float  # own photos (leave-one-out) accepted as the species at ``threshold``
    other_accept_rate: Optional[float] = None  # 'other' photos accepted as the species


class Calibration(BaseModel):
    k: int
    target_accept: float
    target_far: float
    methods: dict[str, dict[str, SpeciesCalibration]]

    def thresholds(self, method: Method) -> dict[str, float]:
        return {s: c.threshold for s, c in self.methods[method].items()}


def _loo_matrix(gallery: Gallery, name: str, method: Method, k: int) -> tuple[list[str], np.ndarray]:
    """Scores of ``name``'s photos against every species, own column leave-one-out."""
    names, scores = species_scores(gallery, gallery.species[name].vectors, method, k)
    scores[:, names.index(name)] = loo_scores(gallery, name, method, k)
    return names, scores


def calibrate_species(
    gallery: Gallery, name: str, method: Method, k: int, target_accept: float, target_far: float
) -> SpeciesCalibration:
    names, scores = _loo_matrix(gallery, name, method, k)
    own = scores[:, names.index(name)]
    still_own = scores.argmax(1) == names.index(name)
    thr_accept = float(np.quantile(own, 1.0 - target_accept, method="lower"))
    thr_far = other_rate = None
    if OTHER in gallery.species:
        onames, oscores = species_scores(gallery, gallery.species[OTHER].vectors, method, k)
        neg = oscores[:, onames.index(name)]
        # Only negatives that would be classified as this species can be wrongly accepted as it.
        neg = np.where(oscores.argmax(1) == onames.index(name), neg, -np.inf)
        thr_far = float(np.quantile(neg, 1.0 - target_far, method="higher")) + 1e-6
    threshold = max(thr_accept, thr_far) if thr_far is not None and np.isfinite(thr_far) else thr_accept
    if OTHER in gallery.species:
        other_rate = float(np.mean(neg >= threshold))
    return SpeciesCalibration(
        threshold=threshold,
        threshold_accept=thr_accept,
        threshold_far=thr_far if thr_far is not None and np.isfinite(thr_far) else None,
        photos=len(own),
        loo_accept_rate=float(np.mean(still_own & (own >= threshold))),
        other_accept_rate=other_rate,
    )


def calibrate(
    gallery: Gallery,
    k: int,
    target_accept: float,
    target_far: float,
    previous: Optional[Calibration] = None,
    changed: Optional[set[str]] = None,
) -> Calibration:
    """Thresholds for every species and method; species not in ``changed`` keep ``previous``."""
    reuse = (
        previous is not None
        and changed is not None
        and OTHER not in changed
        and (previous.k, previous.target_accept, previous.target_far) == (k, target_accept, target_far)
    )
    methods: dict[str, dict[str, SpeciesCalibration]] = {}
    for method in METHODS:
        per: dict[str, SpeciesCalibration] = {}
        for name in gallery.names(include_other=False):
            if reuse and name not in changed and name in previous.methods.get(method, {}):
                per[name] = previous.methods[method][name]
            else:
                per[name] = calibrate_species(gallery, name, method, k, target_accept, target_far)
        methods[method] = per
    return Calibration(k=k, target_accept=target_accept, target_far=target_far, methods=methods)
