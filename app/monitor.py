"""Per-kennel monitoring: repeated camera faults and drift, raised and cleared as alerts.

Both watch the same stream the decision log records. Drift compares a recent window of a
kennel's frames with a reference window (its first frames, or the log's latest rows when the
service starts): the share of frames answered `other`, of abstentions, of camera faults, and the
distribution of best-match scores (two-sample KS statistic). Alerts go to the database, to
Prometheus, and out through MQTT and webhooks.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.stats import ks_2samp
from sqlalchemy import select

from app.alerts import AlertEvent, Notifier
from app.db.models import Alert, DecisionRecord
from app.db.session import Database
from app.metrics import Metrics
from index.folders import OTHER
from kennelgate.health import OK
from kennelgate.settings import Settings

log = logging.getLogger(__name__)
RATES = ("other", "abstain", "fault")


@dataclass(frozen=True)
class Observation:
    other: bool  # classified, and the answer was `other`
    abstain: bool  # the frame opened nothing for anyone (any reason)
    fault: Optional[str]  # camera fault name, or None
    score: Optional[float]  # best-match score of a classified frame

    @classmethod
    def of(cls, species: str, accepted: bool, health: str, error: Optional[str], score: float) -> "Observation":
        fault = health if health != OK else ("bad_frame" if error == "bad_frame" else None)
        classified = fault is None and error is None
        return cls(classified and species == OTHER, not accepted, fault, score if classified else None)


def _window_stats(obs: deque) -> dict:
    n = len(obs)
    scores = [o.score for o in obs if o.score is not None]
    out = {"frames": n}
    for name in RATES:
        out[name] = round(sum(bool(getattr(o, name)) for o in obs) / n, 4) if n else None
    out["score_median"] = round(float(np.median(scores)), 4) if scores else None
    return out


class CameraFaults:
    """Raise when ``raise_at`` of the last ``window`` frames are faulty; clear when few are."""

    def __init__(self, window: int, raise_at: int) -> None:
        self.recent: deque[Optional[str]] = deque(maxlen=window)
        self.raise_at = raise_at
        self.raised = False

    def add(self, fault: Optional[str]) -> Optional[AlertEvent]:
        self.recent.append(fault)
        faults = [f for f in self.recent if f]
        if not self.raised and len(faults) >= self.raise_at:
            self.raised = True
            top = max(set(faults), key=faults.count)
            return AlertEvent(0, "camera_fault", "raised", {"fault": top, "faulty_frames": len(faults), "window": len(self.recent)})
        if self.raised and len(faults) <= self.raise_at // 4:
            self.raised = False
            return AlertEvent(0, "camera_fault", "cleared", {"faulty_frames": len(faults), "window": len(self.recent)})
        return None


class Drift:
    def __init__(self, reference: int, window: int, rate_delta: float, ks: float) -> None:
        self.reference: deque[Observation] = deque(maxlen=reference)
        self.current: deque[Observation] = deque(maxlen=window)
        self.rate_delta, self.ks = rate_delta, ks
        self.raised = False
        self.since_check = 0
        self.last_shifts: Optional[dict] = None
        self.last_windows: tuple[dict, dict] = ({}, {})  # (reference, current) stats behind last_shifts

    CHECK_EVERY = 10  # frames; the comparison costs more than the frame it follows

    def add(self, o: Observation) -> Optional[AlertEvent]:
        if len(self.reference) < self.reference.maxlen:
            self.reference.append(o)
            return None
        self.current.append(o)
        self.since_check += 1
        if len(self.current) < self.current.maxlen or self.since_check < min(self.CHECK_EVERY, self.current.maxlen):
            return None
        self.since_check = 0
        shifts = self.last_shifts = self.shifts()
        over = {k: v for k, v in shifts.items() if v is not None and v > self._limit(k)}
        if not self.raised and over:
            self.raised = True
            return AlertEvent(0, "drift", "raised", {"shifted": over, "shifts": shifts})
        # Hysteresis: clear only well inside the limits, so a borderline kennel does not flap.
        if self.raised and all(v is None or v < 0.7 * self._limit(k) for k, v in shifts.items()):
            self.raised = False
            return AlertEvent(0, "drift", "cleared", {"shifts": shifts})
        return None

    def _limit(self, key: str) -> float:
        return self.ks if key == "score_ks" else self.rate_delta

    def shifts(self) -> dict[str, Optional[float]]:
        if not self.current or not self.reference:
            return {**{k: None for k in RATES}, "score_ks": None}
        ref, cur = self.last_windows = _window_stats(self.reference), _window_stats(self.current)
        out: dict[str, Optional[float]] = {k: round(abs(cur[k] - ref[k]), 4) for k in RATES}
        a = [o.score for o in self.reference if o.score is not None]
        b = [o.score for o in self.current if o.score is not None]
        out["score_ks"] = round(float(ks_2samp(a, b).statistic), 4) if len(a) >= 10 and len(b) >= 10 else None
        return out

    def reset(self) -> None:
        self.reference.clear()
        self.current.clear()
        self.raised = False
        self.since_check = 0
        self.last_shifts = None


class Monitoring:
    def __init__(self, settings: Settings, db: Database, metrics: Metrics, notifier: Notifier) -> None:
        self.settings, self.db, self.metrics, self.notifier = settings, db, metrics, notifier
        self._faults: dict[int, CameraFaults] = {}
        self._drift: dict[int, Drift] = {}
        self._lock = threading.Lock()

    def _state(self, kennel_id: int) -> tuple[CameraFaults, Drift]:
        with self._lock:
            if kennel_id not in self._drift:
                s = self.settings
                self._faults[kennel_id] = CameraFaults(s.fault_alert_window, s.fault_alert_count)
                drift = self._drift[kennel_id] = Drift(s.drift_reference_frames, s.drift_window_frames, s.drift_rate_delta, s.drift_score_ks)
                self._load_reference(kennel_id, drift)
            return self._faults[kennel_id], self._drift[kennel_id]

    def _load_reference(self, kennel_id: int, drift: Drift) -> None:
        """A restarted service keeps comparing against the kennel's logged history."""
        try:
            with self.db.session() as s:
                rows = s.execute(
                    select(DecisionRecord.species, DecisionRecord.accepted, DecisionRecord.health,
                           DecisionRecord.error, DecisionRecord.score)
                    .where(DecisionRecord.kennel_id == kennel_id)
                    .order_by(DecisionRecord.id.desc()).limit(drift.reference.maxlen)
                ).all()
        except Exception:  # noqa: BLE001 - monitoring must not stop frames; start a fresh reference
            log.exception("could not load the drift reference of kennel %s", kennel_id)
            return
        for species, accepted, health, error, score in reversed(rows):
            drift.reference.append(Observation.of(species, accepted, health, "error" if error else None, score))

    def observe(self, kennel_id: int, species: str, accepted: bool, health: str, error: Optional[str], score: float) -> None:
        o = Observation.of(species, accepted, health, error, score)
        faults, drift = self._state(kennel_id)
        k = str(kennel_id)
        if o.fault:
            self.metrics.health_faults.labels(k, o.fault).inc()
        with self._lock:
            events = [e for e in (faults.add(o.fault), drift.add(o)) if e is not None]
        for event in events:
            gauge = self.metrics.kennel_camera_fault if event.kind == "camera_fault" else self.metrics.kennel_drift
            gauge.labels(k).set(int(event.state == "raised"))
            self._emit(AlertEvent(kennel_id, event.kind, event.state, event.detail))
        if drift.since_check == 0 and drift.last_shifts is not None:
            self._export(k, drift)

    def _export(self, k: str, drift: Drift) -> None:
        ref, cur = drift.last_windows  # computed by the check just made
        for name in RATES:
            self.metrics.kennel_rate.labels(k, name, "reference").set(ref[name] or 0.0)
            self.metrics.kennel_rate.labels(k, name, "current").set(cur[name] or 0.0)
        ks = drift.last_shifts["score_ks"]
        if ks is not None:
            self.metrics.kennel_score_ks.labels(k).set(ks)

    def _emit(self, event: AlertEvent) -> None:
        log.warning("kennel %s: %s %s %s", event.kennel_id, event.kind, event.state, event.detail)
        self.metrics.alerts.labels(event.kind, event.state).inc()
        try:
            with self.db.session() as s:
                s.add(Alert(kennel_id=event.kennel_id, kind=event.kind, state=event.state, detail=event.detail))
        except Exception:  # noqa: BLE001 - still send it out
            log.exception("could not record alert")
        self.notifier.alert(event)

    def health(self, kennel_id: int) -> dict:
        faults, drift = self._state(kennel_id)
        with self._lock:
            recent = [f for f in faults.recent if f]
            out = {
                "camera": {
                    "state": "fault" if faults.raised else "ok",
                    "faulty_frames": len(recent), "window": len(faults.recent),
                    "faults": {f: recent.count(f) for f in sorted(set(recent))},
                },
                "drift": {
                    "state": "drifting" if drift.raised else "ok",
                    "reference": _window_stats(drift.reference),
                    "current": _window_stats(drift.current),
                    "shifts": drift.shifts(),
                    "limits": {"rate_delta": drift.rate_delta, "score_ks": drift.ks},
                },
            }
        return out

    def reset_reference(self, kennel_id: int) -> None:
        _, drift = self._state(kennel_id)
        with self._lock:
            was = drift.raised
            drift.reset()
            self.metrics.kennel_drift.labels(str(kennel_id)).set(0)
        if was:
            self._emit(AlertEvent(kennel_id, "drift", "cleared", {"reason": "reference reset by an admin"}))

    def forget(self, kennel_id: int) -> None:
        with self._lock:
            self._faults.pop(kennel_id, None)
            self._drift.pop(kennel_id, None)
