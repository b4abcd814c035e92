"""One kennel frame: thumbnail → frozen / motion gate → decode → health gate → embed → gallery
decision → door window → decision log.

A frame showing the same scene as the last classified one reuses that answer (motion gating,
``kennelgate.motion``): an empty doorway costs a thumbnail, not an encoder run.

Fails closed: a bad frame, a missing index, a database outage or any other error keeps the door
shut, and the reason goes into the response and (when the database is up) the log.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Optional

from PIL import Image

from app.alerts import Notifier
from app.db.models import DecisionRecord, utcnow
from app.db.session import Database
from app.kennels import KennelConfig
from app.metrics import Metrics
from app.monitor import Monitoring
from app.policy import Windows
from embedder.images import ImageError
from index.folders import OTHER
from index.store import GalleryError
from kennelgate.engine import Engine
from kennelgate.health import OK, FreezeDetector, check
from kennelgate.motion import MotionGate, thumbnail
from kennelgate.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class FrameOutcome:
    frame_id: str
    kennel_id: int
    species: str = OTHER
    score: float = 0.0
    breed: Optional[str] = None
    best: str = ""
    accepted: bool = False
    door: str = "closed"
    reason: str = ""
    error: Optional[str] = None  # "bad_frame" | "no_index" | "internal" | "log"
    health: str = OK  # "ok" or the camera fault the health gate found
    reused: bool = False  # the scene had not changed: the anchor frame's answer was reused
    latency_ms: float = 0.0
    model: str = ""
    index_version: str = ""

    def response(self) -> dict:
        return {
            "frame_id": self.frame_id,
            "species": self.species,
            "score": round(self.score, 4),
            "breed": self.breed,
            "decision": self.door,
            "health": self.health,
            "reused": self.reused,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 2),
            "index_version": self.index_version,
        }


class FrameProcessor:
    def __init__(
        self, settings: Settings, engine: Engine, db: Database, windows: Windows, metrics: Metrics,
        monitoring: Monitoring, notifier: Notifier,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.windows = windows
        self.metrics = metrics
        self.monitoring = monitoring
        self.notifier = notifier
        self._insert = DecisionRecord.__table__.insert()
        self._freeze: dict[int, FreezeDetector] = {}
        self._motion: dict[int, MotionGate] = {}
        # Two cores: running several frames through the encoder at once only adds contention.
        self._encoder_slots = threading.Semaphore(max(1, settings.inference_concurrency))
        self._last_thumb: dict[int, float] = {}

    def process(self, kennel: KennelConfig, data: bytes) -> FrameOutcome:
        t0 = time.perf_counter()
        out = FrameOutcome(uuid.uuid4().hex, kennel.id)
        image = None
        motion = self._motion_gate(kennel.id)
        try:
            thumb, decoded = thumbnail(data, self.engine.encoder.limits)
            frozen = self._freeze.setdefault(kennel.id, FreezeDetector()).update(thumb, kennel.health)
            if not frozen.ok:
                self._unhealthy(out, kennel, frozen.fault, frozen.detail)
                return self._finish(out, kennel, None, t0)
            decider = self.engine.decider
            anchor = motion.unchanged(thumb)
            if anchor is not None and anchor.outcome.index_version == decider.version:
                self._reuse(out, kennel, anchor)
                return self._finish(out, kennel, None, t0)
            image = decoded if decoded is not None else self.engine.encoder.load(data)
            out.model = self.engine.encoder.fingerprint
            out.index_version = decider.version
            health = check(image, kennel.health)
            if not health.ok:
                self._unhealthy(out, kennel, health.fault, health.detail)
                motion.anchor(thumb, out.frame_id, dataclasses.replace(out))
                return self._finish(out, kennel, image, t0)
            tensor = self.engine.encoder.preprocess([image])
            with self._encoder_slots:
                vectors = self.engine.encoder.run(tensor).vectors
            d = decider.decide(vectors, kennel.overrides)[0]
            out.species, out.score, out.breed, out.best, out.accepted = d.species, d.score, d.breed, d.best, d.accepted
            window = self.windows.get(kennel.id, kennel.policy, kennel.admits)
            opened, why = window.add(time.monotonic(), d.species if d.accepted else None)
            out.door = "open" if opened else "closed"
            out.reason = why if d.accepted else f"{d.reason}; door closed"
            motion.anchor(thumb, out.frame_id, dataclasses.replace(out))
        except ImageError as exc:
            self._fail(out, kennel, "bad_frame", f"bad frame: {exc}")
        except GalleryError as exc:
            self._fail(out, kennel, "no_index", f"no usable index: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure must close the door, never raise past it
            log.exception("frame %s failed", out.frame_id)
            self._fail(out, kennel, "internal", f"internal error ({type(exc).__name__}); door kept shut")
        return self._finish(out, kennel, image, t0)

    def _finish(self, out: FrameOutcome, kennel: KennelConfig, image: Optional[Image.Image], t0: float) -> FrameOutcome:
        out.latency_ms = (time.perf_counter() - t0) * 1000.0
        self._log(out, image)
        self.metrics.frames.labels(str(kennel.id)).inc()
        self.metrics.decisions.labels(out.door, out.species).inc()
        self.metrics.latency.observe(out.latency_ms / 1000.0)
        try:  # monitoring and notifications must never cost a frame its answer
            self.monitoring.observe(kennel.id, out.species, out.accepted, out.health, out.error, out.score)
            self.notifier.frame(kennel.id, kennel.name, out.response())
        except Exception:  # noqa: BLE001
            log.exception("monitoring failed for frame %s", out.frame_id)
        return out

    def _unhealthy(self, out: FrameOutcome, kennel: KennelConfig, fault: str, detail: str) -> None:
        out.health, out.door, out.accepted, out.species = fault, "closed", False, OTHER
        out.reason = f"camera fault ({detail}); not classified, door kept shut"
        self.windows.get(kennel.id, kennel.policy, kennel.admits).add(time.monotonic(), None)

    def forget(self, kennel_id: int) -> None:
        self._freeze.pop(kennel_id, None)
        self._motion.pop(kennel_id, None)

    def _motion_gate(self, kennel_id: int) -> MotionGate:
        gate = self._motion.get(kennel_id)
        if gate is None:
            gate = self._motion[kennel_id] = MotionGate(self.settings.motion_threshold, self.settings.motion_max_skip)
        return gate

    def _reuse(self, out: FrameOutcome, kennel: KennelConfig, anchor) -> None:
        """Same scene as the anchor frame: its answer again, and its vote again in the door window."""
        a: FrameOutcome = anchor.outcome
        out.species, out.score, out.breed, out.best, out.accepted = a.species, a.score, a.breed, a.best, a.accepted
        out.health, out.model, out.index_version, out.reused = a.health, a.model, a.index_version, True
        self.metrics.frames_reused.labels(str(kennel.id)).inc()
        opened, why = self.windows.get(kennel.id, kennel.policy, kennel.admits).add(
            time.monotonic(), a.species if a.accepted else None
        )
        out.door = "open" if opened else "closed"
        out.reason = f"scene unchanged since frame {anchor.frame_id}: " + (why if a.accepted else f"{a.reason.split('; ')[0]}; door closed")

    def _fail(self, out: FrameOutcome, kennel: KennelConfig, kind: str, reason: str) -> None:
        self._motion_gate(kennel.id).reset()  # after a failure the next frame gets the full pipeline
        out.door, out.reason, out.error, out.accepted, out.species = "closed", reason, kind, False, OTHER
        self.metrics.frame_errors.labels(kind).inc()
        # A failed frame is a vote against opening, like an unknown animal.
        self.windows.get(kennel.id, kennel.policy, kennel.admits).add(time.monotonic(), None)

    def _thumbnail(self, out: FrameOutcome, image: Optional[Image.Image]) -> Optional[bytes]:
        mode = self.settings.thumbnails
        if image is None or mode == "none" or (mode == "rejected" and out.accepted):
            return None
        now = time.monotonic()
        if now - self._last_thumb.get(out.kennel_id, -1e9) < self.settings.thumbnail_interval_s:
            return None
        self._last_thumb[out.kennel_id] = now
        thumb = image.copy()
        thumb.thumbnail((self.settings.thumbnail_size, self.settings.thumbnail_size))
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=75)
        return buf.getvalue()

    def _log(self, out: FrameOutcome, image: Optional[Image.Image]) -> None:
        try:
            row = dict(
                frame_id=out.frame_id, kennel_id=out.kennel_id, created_at=utcnow(), species=out.species, best=out.best,
                score=out.score, breed=out.breed, accepted=out.accepted, door=out.door, reason=out.reason[:500],
                error=out.error is not None, health=out.health, reused=out.reused, latency_ms=out.latency_ms,
                model=out.model, index_version=out.index_version, thumbnail=self._thumbnail(out, image),
            )
            # A Core insert, not the ORM: at hundreds of frames/s the unit-of-work overhead shows.
            with self.db.engine.begin() as conn:
                conn.execute(self._insert, row)
        except Exception as exc:  # noqa: BLE001
            # An unlogged decision must not open a door.
            log.exception("decision log write failed for frame %s", out.frame_id)
            self.metrics.frame_errors.labels("log").inc()
            out.door, out.error = "closed", "log"
            out.reason = f"decision log unavailable ({type(exc).__name__}); door kept shut"
