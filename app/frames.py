"""One kennel frame in the service: the shared frame pipeline (``kennelgate.pipeline``: motion
gate, decode, health gate, encoder, decision, cascade), then the decision log, then the door
window and any staff override (``app.overrides``), then metrics and monitoring.

A frame showing the same scene as the last classified one reuses that answer (motion gating,
``kennelgate.motion``): an empty doorway costs a thumbnail, not an encoder run.

Fails closed: a bad frame, a missing index, a database outage or any other error keeps the door
shut, and the reason goes into the response and (when the database is up) the log. The frame's
vote enters the door window only once the frame is in the log: an unlogged frame votes to stay
shut.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image

from app.admission import FrameLate
from app.alerts import Notifier
from app.batcher import EncoderBatcher
from app.db.models import utcnow
from app.db.session import Database
from app.decision_log import DecisionLog
from app.kennels import KennelConfig
from app.kept_frames import FrameKeeper
from app.metrics import Metrics
from app.monitor import Monitoring
from app.overrides import Overrides
from index.folders import OTHER
from index.store import GalleryError
from kennelgate.door import Windows
from kennelgate.engine import Engine
from kennelgate.health import OK
from kennelgate.motion import MotionGate
from kennelgate.pipeline import Camera, FrameResult
from kennelgate.remote_tier import RemoteTier
from kennelgate.settings import Settings

log = logging.getLogger(__name__)
LATE_ROW_BUDGET_S = 1.0  # a late frame's "late, closed" row may take this long to commit, or is dropped


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
    error: Optional[str] = None  # "bad_frame" | "no_index" | "internal" | "log" | "late"
    health: str = OK  # "ok" or the camera fault the health gate found
    reused: bool = False  # the scene had not changed: the anchor frame's answer was reused
    tier: str = "local"  # "remote": the cascade's big tier answered (this model was unsure)
    latency_ms: float = 0.0
    model: str = ""
    index_version: str = ""
    prefix: str = ""  # how a reused answer came about, put before the reason
    animals: list = field(default_factory=list)  # counted animals (head count ran on this frame)
    people: int = 0  # people in view (head count ran on this frame)
    override: Optional[str] = None  # a staff override decided the door ("open_once", "hold_closed", "lock")
    kept: bool = False  # the whole frame was kept for learning (app.kept_frames)
    top: list = field(default_factory=list, repr=False)  # the gallery's best species and scores

    def response(self) -> dict:
        return {
            "frame_id": self.frame_id,
            "species": self.species,
            "score": round(self.score, 4),
            "breed": self.breed,
            "decision": self.door,
            "health": self.health,
            "reused": self.reused,
            "tier": self.tier,
            "reason": self.reason,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 2),
            "index_version": self.index_version,
            "animals": self.animals,
            "people": self.people,
            "override": self.override,
        }


class FrameProcessor:
    def __init__(
        self, settings: Settings, engine: Engine, db: Database, windows: Windows, metrics: Metrics,
        monitoring: Monitoring, notifier: Notifier, overrides: Overrides, keeper: FrameKeeper,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.windows = windows
        self.metrics = metrics
        self.monitoring = monitoring
        self.notifier = notifier
        self.overrides = overrides
        self.keeper = keeper
        self.decision_log = DecisionLog(db)
        self._cameras: dict[int, Camera] = {}
        self._batcher: Optional[EncoderBatcher] = None
        s = settings
        self.cascade = RemoteTier(s.cascade_url, s.cascade_token, s.cascade_timeout_s) if s.cascade_url else None
        self.pipeline = engine.pipeline(embed=self._embed, big_tier=self.cascade.classify if self.cascade else None)
        self._last_thumb: dict[int, float] = {}
        self._frame = threading.local()  # the deadline of the frame this thread is working on

    def process(self, kennel: KennelConfig, data: bytes, deadline: Optional[float] = None) -> FrameOutcome:
        """Decide one frame. With a ``deadline`` (monotonic time), a frame that cannot be decided
        by then is answered ``error="late"``, door shut, and is never decided late."""
        t0 = time.perf_counter()
        result: Optional[FrameResult] = None
        self._frame.deadline = deadline
        try:
            self._check_deadline()
            result = self.pipeline.run([data], [self._camera(kennel)], kennel.health, kennel.overrides,
                                       max_animals=kennel.max_animals, people_block=kennel.people_block)[0]
            self._check_deadline()
            out = self._outcome(kennel, result)
        except FrameLate:
            out = self._fail(kennel, "late", f"not decided within {self.settings.frame_deadline_ms:g} ms of arrival "
                                             "(server overloaded); door kept shut")
        except GalleryError as exc:
            out = self._fail(kennel, "no_index", f"no usable index: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure must close the door, never raise past it
            out = self._fail(kennel, "internal", f"internal error ({type(exc).__name__}); door kept shut")
            log.exception("frame %s failed", out.frame_id)
        return self._finish(out, kennel, result.image if result is not None and out.error is None else None, t0, data)

    def _outcome(self, kennel: KennelConfig, r: FrameResult) -> FrameOutcome:
        """The service's view of a pipeline result: the door is not decided yet."""
        d = r.decision
        out = FrameOutcome(r.frame_id, kennel.id, species=r.species, accepted=r.accepted, error=r.error,
                           health=r.health.fault, reused=r.reused_from is not None,
                           tier="remote" if r.tier == "remote" else "local",
                           model=self.engine.encoder.fingerprint, index_version=r.index_version, animals=r.animals,
                           people=r.people)
        if d is not None:
            out.score, out.breed, out.best, out.top = d.score, d.breed if r.accepted else None, d.best, d.top
        if r.error is not None:
            self._motion_reset(kennel)
            self.metrics.frame_errors.labels(r.error).inc()
        if r.tier == "remote":
            self.metrics.frames_cascaded.inc()
        elif r.tier == "unanswered":
            self.metrics.frame_errors.labels("cascade").inc()
        if out.reused:
            self.metrics.frames_reused.labels(str(kennel.id)).inc()
        out.reason = r.reason if r.error is not None or not r.health.ok else r.reason.split("; ")[0]
        if out.reused:
            seen = "idle scene, frame not examined" if r.unseen else "scene unchanged"
            out.prefix = f"{seen} since frame {r.reused_from}: "
        if r.tier == "remote" and self.cascade is not None:
            out.prefix += f"answered by the big tier ({self.cascade.url}): "
        return out

    def _check_deadline(self) -> None:
        deadline = getattr(self._frame, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise FrameLate()

    def _embed(self, images: list[Image.Image]) -> np.ndarray:
        """Frames from all kennels share encoder runs (the micro-batcher); a frame whose deadline
        passes while it waits for the encoder is withdrawn and costs it nothing."""
        self._check_deadline()
        deadline = getattr(self._frame, "deadline", None)
        try:
            return np.stack([self.batcher.embed(self.engine.encoder.preprocess([im]), deadline) for im in images])
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise FrameLate() from None
            raise

    def classify(self, data: bytes) -> dict:
        """One image → the gallery's answer, with no door, health gate or log (``POST /v1/classify``)."""
        self._frame.deadline = None  # this worker thread may have carried a frame with a deadline before
        decider = self.engine.decider
        image = self.engine.encoder.load(data)
        d = decider.decide(self._embed([image]))[0]
        return {**d.to_json(), "model": self.engine.encoder.spec.name, "index_version": decider.version}

    @property
    def batcher(self) -> EncoderBatcher:
        """Frames from all kennels share encoder runs (created with the encoder, on first use)."""
        if self._batcher is None:
            s = self.settings
            self._batcher = EncoderBatcher(self.engine.encoder, s.encoder_batch, s.encoder_linger_ms)
        return self._batcher

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self.cascade is not None:
            self.cascade.close()
        self.decision_log.close()

    def _finish(self, out: FrameOutcome, kennel: KennelConfig, image: Optional[Image.Image], t0: float,
                data: bytes = b"") -> FrameOutcome:
        window = self.windows.get(kennel.id, kennel.policy, kennel.admits)
        now = time.monotonic()
        vote = out.species if out.accepted and out.error is None else None
        opened, why = window.would_open(now, vote)
        out.door = "open" if opened else "closed"
        if out.error is None and out.health == OK:
            out.reason = why if out.accepted else f"{out.reason}; door closed"
        elif out.health != OK and out.error is None:
            out.reason = f"{out.reason}, door kept shut"
        out.reason = out.prefix + out.reason
        override = self.overrides.claim(kennel.id) if out.error != "late" else None
        if override is not None:  # staff decide this door; the frame's own answer stays in the reason
            out.door, out.override = override.door, override.action
            out.reason = f"{override.describe()}; the frame: {out.reason}"
        if data and not out.reused and self.keeper.teachable(out.accepted, out.error is not None, out.health != OK,
                                                               out.override, out.top):
            out.kept = self.keeper.keep(out.frame_id, data, kennel.id,  # before the row that says so
                                        always=out.override is not None)
        out.latency_ms = (time.perf_counter() - t0) * 1000.0
        logged = self._log(out, image)
        if not logged:
            vote = None
            if out.kept:
                self.keeper.forget(out.frame_id)
        if override is not None:
            self.overrides.settle(override, out.frame_id if logged else None)
            self.metrics.override_doors.labels(str(kennel.id), out.door).inc()
        window.add(now, vote)  # after the log: an unlogged frame votes to stay shut
        self.metrics.frames.labels(str(kennel.id)).inc()
        self.metrics.decisions.labels(out.door, out.species).inc()
        self.metrics.latency.observe(out.latency_ms / 1000.0)
        try:  # monitoring and notifications must never cost a frame its answer
            self.monitoring.observe(kennel.id, out.species, out.accepted, out.health, out.error, out.score)
            self.notifier.frame(kennel.id, kennel.name, out.response())
        except Exception:  # noqa: BLE001
            log.exception("monitoring failed for frame %s", out.frame_id)
        return out

    def forget(self, kennel_id: int) -> None:
        self._cameras.pop(kennel_id, None)

    def _camera(self, kennel: KennelConfig) -> Camera:
        """The kennel's camera memory (forgotten whenever the kennel's configuration changes)."""
        camera = self._cameras.get(kennel.id)
        if camera is None:
            s = self.settings
            camera = self._cameras[kennel.id] = Camera(MotionGate(
                s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every,
                opens_nothing=lambda r: not r.accepted or r.species not in kennel.admits,
            ))
        return camera

    def _motion_reset(self, kennel: KennelConfig) -> None:
        camera = self._cameras.get(kennel.id)
        if camera is not None and camera.motion is not None:
            camera.motion.reset()  # after a failure the next frame gets the full pipeline

    def _fail(self, kennel: KennelConfig, kind: str, reason: str) -> FrameOutcome:
        self._motion_reset(kennel)
        self.metrics.frame_errors.labels(kind).inc()
        return FrameOutcome(uuid.uuid4().hex, kennel.id, reason=reason, error=kind)

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

    def _log(self, out: FrameOutcome, image: Optional[Image.Image]) -> bool:
        """Write the frame's row; False (and the door closed) when the log could not take it."""
        try:
            row = dict(
                frame_id=out.frame_id, kennel_id=out.kennel_id, created_at=utcnow(), species=out.species, best=out.best,
                score=out.score, breed=out.breed, accepted=out.accepted, door=out.door, reason=out.reason[:500],
                error=out.error is not None, health=out.health, reused=out.reused, latency_ms=out.latency_ms,
                model=out.model, index_version=out.index_version, thumbnail=self._thumbnail(out, image),
                animals=out.animals or None, people=out.people if out.animals or out.people else None,
                override=out.override, kept=out.kept,
            )
            # Returns once committed (group commit with other frames). A frame past its deadline
            # is withdrawn unwritten and answered "late": the log never says "open" for a frame
            # the device was told was not decided.
            deadline = getattr(self._frame, "deadline", None)
            if out.error == "late":  # its own row, "late, closed", within a fresh short budget
                deadline = time.monotonic() + LATE_ROW_BUDGET_S
            self.decision_log.write(row, deadline)
            return True
        except TimeoutError:
            if out.error in (None, "late"):
                if out.error is None:
                    self.metrics.frame_errors.labels("late").inc()
                out.door, out.error = "closed", "late"
                out.reason = (f"not logged within {self.settings.frame_deadline_ms:g} ms of arrival (decision log "
                              "slow); door kept shut, not logged")
            return False
        except Exception as exc:  # noqa: BLE001
            # An unlogged decision must not open a door.
            log.exception("decision log write failed for frame %s", out.frame_id)
            self.metrics.frame_errors.labels("log").inc()
            out.door, out.error = "closed", "log"
            out.reason = f"decision log unavailable ({type(exc).__name__}); door kept shut"
            return False
