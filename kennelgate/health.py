"""Frame health gate: is this camera frame fit to decide on at all?

Runs before the encoder and costs a few milliseconds: the frame's statistics are measured once
on a small copy (``kennelgate.health_features``). Two faults are plain rules a person can read
and set (no signal, too dark); washed-out, occluded and blurred frames are recognised by learned
detectors (``kennelgate.health_detector``), because no single statistic separates them from
ordinary soft, bright or plain shelter photos at ≤ 1% false alarms. A frozen feed is caught per
camera over time. An unhealthy frame is never classified; the door stays shut and the fault is
named. Every limit can be overridden per kennel.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from PIL import Image
from kennelgate import health_detector
from kennelgate.health_detector import FaultDetector
from kennelgate.health_features import FrameFeatures, frame_features
from kennelgate.health_thresholds import FAULTS, OK, HealthThresholds

__all__ = ["FAULTS", "OK", "Health", "HealthThresholds", "check", "check_stream", "judge", "FreezeDetector"]


@dataclass(frozen=True)
class Health:
    fault: str = OK  # "ok" or one of FAULTS
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.fault == OK


def _explain(fault: str, f: FrameFeatures, score: float, limit: float) -> str:
    """What a person would check, in words, with the detector's score."""
    why = {
        "bright": f"washed out ({100 * f['clip250']:.0f}% of pixels clipped, median brightness {f['p50']:.0f}/255)",
        "occlusion": f"lens blocked or dirty (a smooth patch covers {100 * f['s8cc_4']:.0f}% of the frame)",
        "blur": "blurred (out of focus or moving)",
    }[fault]
    return f"{why}; detector score {score:.2f} > {limit:.2f}"


def judge(f: FrameFeatures, t: HealthThresholds, detector: Optional[FaultDetector] = None) -> Health:
    """The most basic fault found first (a black frame is "no signal", not "dark"), then the
    learned fault whose score is furthest above its limit."""
    if not t.enabled:
        return Health()
    # Flat and without even a dim scene's spread: a dark room still has 10+ grey levels of range.
    if f["uniform"] >= t.no_signal_uniform and f["p95"] - f["p5"] <= 12:
        return Health("no_signal", f"{100 * f['uniform']:.0f}% of the frame is one flat colour")
    if f["p95"] < t.dark_p95:
        return Health("dark", f"too dark: 95% of pixels below {f['p95']:.0f}/255")
    detector = detector or health_detector.get()
    scores = detector.scores(f.values)
    over = {k: (s, t.limit(k, detector)) for k, s in scores.items() if s > t.limit(k, detector)}
    if not over:
        return Health()
    fault = max(over, key=lambda k: (over[k][0] - over[k][1]) / max(1e-6, 1 - over[k][1]))
    return Health(fault, _explain(fault, f, *over[fault]))


def check(
    image: Image.Image, thresholds: HealthThresholds, detector: Optional[FaultDetector] = None,
    features: Callable[[Image.Image], FrameFeatures] = frame_features,
) -> Health:
    """``features``: how the frame's statistics are computed (a study that sees the same frames
    in every trial passes a memoised one)."""
    if not thresholds.enabled:
        return Health()
    return judge(features(image), thresholds, detector)


class FreezeDetector:
    """Counts identical frames in a row for one camera: a live sensor is never perfectly still.

    Works on the motion thumbnail (``kennelgate.motion``), which every frame the motion gate looks
    at gets, and on the raw bytes of the frames it answers unseen: a camera that resends the
    same encoded frame sends the same bytes.
    """

    def __init__(self) -> None:
        self._last: Optional[np.ndarray] = None
        self._last_bytes: Optional[bytes] = None
        self._run = 0
        self._lock = threading.Lock()

    def update(self, thumb: np.ndarray, t: HealthThresholds, data: Optional[bytes] = None) -> Health:
        if not t.enabled:
            return Health()
        with self._lock:
            same = self._last is not None and self._last.shape == thumb.shape and float(
                np.abs(self._last - thumb).mean()
            ) < t.frozen_diff
            self._run = self._run + 1 if same else 0
            self._last, self._last_bytes = thumb, data
            return self._verdict(t)

    def update_unseen(self, data: bytes, t: HealthThresholds) -> Health:
        """A frame that was not decoded: identical bytes extend the run; other bytes prove nothing
        either way (the same picture may be re-encoded), so the run is left as it is."""
        if not t.enabled:
            return Health()
        with self._lock:
            if self._last_bytes is not None and data == self._last_bytes:
                self._run += 1
            return self._verdict(t)

    def _verdict(self, t: HealthThresholds) -> Health:
        if self._run + 1 >= t.frozen_frames:
            return Health("frozen", f"frozen feed: {self._run + 1} identical frames in a row")
        return Health()


def check_stream(
    image: Image.Image, thresholds: HealthThresholds, freeze: FreezeDetector, detector: Optional[FaultDetector] = None
) -> Health:
    """``check`` plus the frozen-feed test, for frames of one camera in order."""
    from kennelgate.motion import grey_thumb

    frozen = freeze.update(grey_thumb(image), thresholds)
    return frozen if not frozen.ok else check(image, thresholds, detector)
