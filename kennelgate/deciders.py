"""The one place where settings become thresholds and a decider: every caller (the engine, the
evaluations, the cascade, the scripts) builds them here, so none can drift from the service."""

from __future__ import annotations

from typing import Optional

from index.calibration import Calibration, calibrate
from index.decision import Decider
from index.gallery import Gallery
from kennelgate.settings import Settings


def calibrate_from(
    settings: Settings, gallery: Gallery, previous: Optional[Calibration] = None, changed: Optional[set[str]] = None
) -> Calibration:
    s = settings
    return calibrate(gallery, s.k, s.target_accept, s.target_far, previous=previous, changed=changed,
                     twin_cosine=s.twin_cosine, min_margin=s.min_margin, other_weight=s.other_weight)


def matches(settings: Settings, calibration: Calibration) -> bool:
    """Whether stored thresholds were calibrated with these settings (and for its method: older
    versions have no ``contrast`` thresholds)."""
    s = settings
    c = calibration
    return s.method in c.methods and (c.k, c.target_accept, c.target_far, c.twin_cosine, c.min_margin, c.other_weight) == (
        s.k, s.target_accept, s.target_far, s.twin_cosine, s.min_margin, s.other_weight)


def decider_from(
    settings: Settings, gallery: Gallery, calibration: Optional[Calibration] = None, version: str = ""
) -> Decider:
    """A decider for ``gallery``; thresholds are (re)calibrated when none are given or the given
    ones were made with other settings."""
    s = settings
    if calibration is None or not matches(s, calibration):
        calibration = calibrate_from(s, gallery)
    return Decider(gallery, calibration, method=s.method, k=s.k, reject_ambiguous=s.reject_ambiguous,
                   min_margin=s.min_margin, other_weight=s.other_weight, version=version)
