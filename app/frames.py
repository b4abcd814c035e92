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
import time
import uuid
from dataclasses import dataclass
from typing import Optional

from PIL import Image

from app.alerts import Notifier
from app.batcher import EncoderBatcher
from app.db.models import utcnow
from app.decision_log import DecisionLog
from app.db.session import Database
from app.kennels import KennelConfig
from app.metrics import Metrics
from app.monitor import Monitoring
from app.policy import Windows
from embedder.images import ImageError
from index.decision import Decision
from index.folders import OTHER
from index.store import GalleryError
from kennelgate.cascade import RemoteTier, TierError, unsure
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
    tier: str = "local"  # "remote": the cascade's big tier answered (this model was unsure)
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
            "tier": self.tier,
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
        self.decision_log = DecisionLog(db)
        self._freeze: dict[int, FreezeDetector] = {}
        self._motion: dict[int, MotionGate] = {}
        self._batcher: Optional[EncoderBatcher] = None
        s = settings
        self.cascade = RemoteTier(s.cascade_url, s.cascade_token, s.cascade_timeout_s) if s.cascade_url else None
        self._last_thumb: dict[int, float] = {}

    def process(self, kennel: KennelConfig, data: bytes) -> FrameOutcome:
        t0 = time.perf_counter()
        out = FrameOutcome(uuid.uuid4().hex, kennel.id)
        image = None
        motion = self._motion_gate(kennel)
        freeze = self._freeze.setdefault(kennel.id, FreezeDetector())
        try:
            decider = self.engine.decider
            idle = motion.unseen()
            if idle is not None and idle.outcome.index_version == decider.version:
                frozen = freeze.update_unseen(data, kennel.health)
                if not frozen.ok:
                    self._unhealthy(out, kennel, frozen.fault, frozen.detail)
                else:
                    self._reuse(out, kennel, idle, unseen=True)
                return self._finish(out, kennel, None, t0)
            thumb, decoded = thumbnail(data, self.engine.encoder.limits)
            frozen = freeze.update(thumb, kennel.health, data)
            if not frozen.ok:
                self._unhealthy(out, kennel, frozen.fault, frozen.detail)
                return self._finish(out, kennel, None, t0)
            anchor = motion.unchanged(thumb)
            if anchor is not None and anchor.outcome.index_version == decider.version:
                self._reuse(out, kennel, anchor)
                return self._finish(out, kennel, None, t0)
            image = decoded if decoded is not None else self.engine.encoder.load(data)
            out.model = self.engine.encoder.fingerprint
            out.index_version = decider.version
            health = check(image, kennel.health, self.engine.health_detector)
            if not health.ok:
                self._unhealthy(out, kennel, health.fault, health.detail)
                motion.anchor(thumb, out.frame_id, dataclasses.replace(out))
                return self._finish(out, kennel, image, t0)
            vector = self.batcher.embed(self.engine.encoder.preprocess([image]))
            d = decider.decide(vector[None, :], kennel.overrides)[0]
            if self.cascade is not None and unsure(d, {**decider.thresholds, **kennel.overrides}, self.settings.cascade_margin):
                d = self._ask_big_tier(d, data, out)
            out.species, out.score, out.breed, out.best, out.accepted = d.species, d.score, d.breed, d.best, d.accepted
            window = self.windows.get(kennel.id, kennel.policy, kennel.admits)
            opened, why = window.add(time.monotonic(), d.species if d.accepted else None)
            out.door = "open" if opened else "closed"
            out.reason = why if d.accepted else f"{d.reason}; door closed"
            if out.tier == "remote":
                out.reason = f"answered by the big tier ({self.cascade.url}): {out.reason}"
            motion.anchor(thumb, out.frame_id, dataclasses.replace(out))
        except ImageError as exc:
            self._fail(out, kennel, "bad_frame", f"bad frame: {exc}")
        except GalleryError as exc:
            self._fail(out, kennel, "no_index", f"no usable index: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure must close the door, never raise past it
            log.exception("frame %s failed", out.frame_id)
            self._fail(out, kennel, "internal", f"internal error ({type(exc).__name__}); door kept shut")
        return self._finish(out, kennel, image, t0)

    def _ask_big_tier(self, small: Decision, data: bytes, out: FrameOutcome) -> Decision:
        """The big tier's answer for a frame this model is unsure of; none = the door stays shut."""
        try:
            big = self.cascade.classify(data)
        except TierError as exc:
            self.metrics.frame_errors.labels("cascade").inc()
            return Decision(OTHER, small.score, False, top=small.top, best=small.best,
                            reason=f"unsure ({small.reason}) and the big tier did not answer: {exc}")
        out.tier = "remote"
        self.metrics.frames_cascaded.inc()
        return big

    def classify(self, data: bytes) -> dict:
        """One image → the gallery's answer, with no door, health gate or log (``POST /v1/classify``)."""
        decider = self.engine.decider
        image = self.engine.encoder.load(data)
        d = decider.decide(self.batcher.embed(self.engine.encoder.preprocess([image]))[None, :])[0]
        return {
            "species": d.species, "score": round(d.score, 4), "accepted": d.accepted, "best": d.best, "breed": d.breed,
            "top": [[n, v] for n, v in d.top], "reason": d.reason, "model": self.engine.encoder.spec.name,
            "index_version": decider.version,
        }

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

    def _motion_gate(self, kennel: KennelConfig) -> MotionGate:
        """The kennel's gate (forgotten whenever the kennel's configuration changes)."""
        gate = self._motion.get(kennel.id)
        if gate is None:
            s = self.settings
            gate = self._motion[kennel.id] = MotionGate(
                s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every,
                opens_nothing=lambda a: not a.accepted or a.species not in kennel.admits,
            )
        return gate

    def _reuse(self, out: FrameOutcome, kennel: KennelConfig, anchor, unseen: bool = False) -> None:
        """Same scene as the anchor frame: its answer again, and its vote again in the door window.

        ``unseen``: the frame was not even decoded (idle sampling; the answer opens nothing)."""
        a: FrameOutcome = anchor.outcome
        out.species, out.score, out.breed, out.best, out.accepted = a.species, a.score, a.breed, a.best, a.accepted
        out.health, out.model, out.index_version, out.reused, out.tier = a.health, a.model, a.index_version, True, a.tier
        self.metrics.frames_reused.labels(str(kennel.id)).inc()
        opened, why = self.windows.get(kennel.id, kennel.policy, kennel.admits).add(
            time.monotonic(), a.species if a.accepted else None
        )
        out.door = "open" if opened else "closed"
        seen = "idle scene, frame not examined" if unseen else "scene unchanged"
        out.reason = f"{seen} since frame {anchor.frame_id}: " + (why if a.accepted else f"{a.reason.split('; ')[0]}; door closed")

    def _fail(self, out: FrameOutcome, kennel: KennelConfig, kind: str, reason: str) -> None:
        self._motion_gate(kennel).reset()  # after a failure the next frame gets the full pipeline
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
            self.decision_log.write(row)  # returns once committed (group commit with other frames)
        except Exception as exc:  # noqa: BLE001
            # An unlogged decision must not open a door.
            log.exception("decision log write failed for frame %s", out.frame_id)
            self.metrics.frame_errors.labels("log").inc()
            out.door, out.error = "closed", "log"
            out.reason = f"decision log unavailable ({type(exc).__name__}); door kept shut"
