"""Learned camera-fault detectors: washed out, lens occluded, blurred.

One gradient-boosted tree ensemble (LightGBM) per fault reads the frame's statistics
(``kennelgate.health_features``) and gives a score; the fault is raised above a threshold that
was calibrated on clean frames the detector never saw in training (out-of-fold), to a false-alarm
rate chosen at training time. Why learned: one statistic per fault cannot tell a blurred frame
from a soft shelter photo, or mud on the lens from a plain wall, at ≤ 1% false alarms
(docs/corruptions.md); the combination of a few dozen can.

A detector bundle is a gzipped JSON file (LightGBM's own text model format inside: no pickle,
nothing executed on load). The package ships one trained on the shared photo set
(``scripts/health_gate.py``); ``kennelgate health train`` trains one on a shelter's own photos.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from kennelgate.health_features import FEATURE_NAMES

log = logging.getLogger(__name__)

LEARNED_FAULTS = ("bright", "occlusion", "blur")
BUNDLE_FORMAT = 1
PACKAGED = Path(__file__).with_name("data") / "health_detector.json.gz"


class DetectorError(ValueError):
    """A detector file that cannot be used, with the reason."""


@dataclass
class FaultModel:
    fault: str
    booster: object  # lightgbm.Booster
    threshold: float  # score above which the fault is raised
    info: dict = field(default_factory=dict)  # training record: frames, out-of-fold detection…


@dataclass
class FaultDetector:
    models: dict[str, FaultModel]
    info: dict = field(default_factory=dict)
    source: str = ""

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: m.threshold for k, m in self.models.items()}

    def scores(self, features: np.ndarray) -> dict[str, float]:
        x = np.asarray(features, np.float64).reshape(1, -1)
        return {k: float(m.booster.predict(x, num_threads=1)[0]) for k, m in self.models.items()}

    def to_dict(self) -> dict:
        return {
            "format": BUNDLE_FORMAT,
            "features": list(FEATURE_NAMES),
            "info": self.info,
            "faults": {
                k: {"threshold": m.threshold, "info": m.info, "model": m.booster.model_to_string()}
                for k, m in self.models.items()
            },
        }

    def save(self, path: Path) -> None:
        """Written beside and renamed into place: a reader never sees half a file."""
        from kennelgate.atomic import write_bytes_atomic

        write_bytes_atomic(Path(path), gzip.compress(json.dumps(self.to_dict()).encode(), compresslevel=9, mtime=0))


def load(path: Path) -> FaultDetector:
    import lightgbm as lgb

    try:
        data = json.loads(gzip.decompress(Path(path).read_bytes()))
    except (OSError, ValueError) as exc:
        raise DetectorError(f"{path}: not a detector bundle ({exc})") from exc
    if data.get("format") != BUNDLE_FORMAT:
        raise DetectorError(f"{path}: detector format {data.get('format')!r}, this version reads {BUNDLE_FORMAT}")
    if data.get("features") != list(FEATURE_NAMES):
        raise DetectorError(f"{path}: trained on other frame statistics than this version computes; retrain it")
    models = {}
    for fault, m in data["faults"].items():
        if fault not in LEARNED_FAULTS:
            raise DetectorError(f"{path}: unknown fault {fault!r}")
        models[fault] = FaultModel(fault, lgb.Booster(model_str=m["model"]), float(m["threshold"]), m.get("info", {}))
    return FaultDetector(models, data.get("info", {}), str(path))


_cache: dict[Path, tuple[float, FaultDetector]] = {}
_cache_lock = threading.Lock()


def get(path: Optional[Path] = None) -> FaultDetector:
    """The detector at ``path`` (the packaged one by default), re-read when the file changes."""
    path = Path(path) if path is not None else PACKAGED
    mtime = path.stat().st_mtime
    with _cache_lock:
        hit = _cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    detector = load(path)
    with _cache_lock:
        _cache[path] = (mtime, detector)
    log.info("health detectors loaded from %s", path)
    return detector
