"""Everything the API holds for its lifetime, wired once: database, engine, library, caches."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional, Sequence

from app.alerts import MqttPublisher, Notifier, WebhookSender
from app.auth import Authenticator, Principal
from app.db import migrate
from app.db.session import Database
from app.admission import Admission
from app.frames import FrameProcessor
from app.kennels import KennelCache
from app.kept_frames import FrameKeeper
from app.library import FieldFrame, PhotoLibrary
from app.metrics import Metrics
from app.monitor import Monitoring
from app.overrides import Active, Overrides
from app import labels
from app.db.models import DecisionRecord
from kennelgate.door import Windows
from app.rebuild import RebuildReport, rebuild
from index.store import GalleryError
from kennelgate.engine import Engine
from kennelgate.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RebuildStatus:
    state: str = "idle"  # idle | running | done | failed
    started: Optional[datetime] = None
    finished: Optional[datetime] = None
    error: Optional[str] = None
    report: Optional[RebuildReport] = field(default=None, repr=False)


def make_notifier(settings: Settings) -> Notifier:
    mqtt = MqttPublisher(settings.mqtt_url, settings.mqtt_prefix, discovery=settings.mqtt_discovery) if settings.mqtt_url else None
    urls = [u.strip() for u in settings.webhook_urls.split(",") if u.strip()]
    return Notifier(mqtt, WebhookSender(urls) if urls else None, decisions=settings.mqtt_decisions)


def keeper_of(settings: Settings) -> FrameKeeper:
    s = settings
    return FrameKeeper(s.frames_dir, s.keep_frames, s.keep_frames_mb, s.keep_frames_days, s.keep_margin,
                       s.keep_frames_per_minute)


class Service:
    def __init__(self, settings: Settings, engine: Optional[Engine] = None) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        if settings.auto_migrate:
            migrate.upgrade(settings.db_url)
        self.db = Database(settings.db_url)
        self.engine = engine or Engine(settings)
        self.library = PhotoLibrary(settings.photos_dir, self.db, self.engine)
        self.auth = Authenticator(self.db, settings.admin_token)
        self.kennels = KennelCache(self.db, settings)
        self.windows = Windows()
        self.metrics = Metrics()
        self.notifier = make_notifier(settings)
        self.monitoring = Monitoring(settings, self.db, self.metrics, self.notifier)
        self.overrides = Overrides(self.db)
        self.keeper = keeper_of(settings)
        self.frames = FrameProcessor(
            settings, self.engine, self.db, self.windows, self.metrics, self.monitoring, self.notifier, self.overrides,
            self.keeper,
        )
        self.admission = Admission(settings.frames_in_flight, settings.frames_in_flight_per_kennel)
        self.rebuild_status = RebuildStatus()
        self._rebuild_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: Optional[threading.Thread] = None
        self.index_error: Optional[str] = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        _ = self.engine.encoder  # load (or build) the model before taking traffic
        _ = self.engine.animal_detector  # and the head count's detector, when installed (on: required)
        self.reconcile(wait=True)
        self.poll_index()
        self._watcher = threading.Thread(target=self._watch, name="index-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher:
            self._watcher.join(timeout=5)
        self.frames.close()
        self.notifier.close()
        self.db.dispose()

    # --- staff actions -------------------------------------------------------------------
    def override(self, kennel_id: int, action: str, who: Principal, minutes: Optional[float] = None,
                 reason: str = "") -> Optional[Active]:
        """Set or release a door override: audited, counted and announced (MQTT ``override``, webhooks)."""
        active = self.overrides.set(kennel_id, action, who, minutes, reason)
        self.metrics.overrides.labels(str(kennel_id), action).inc()
        self.notifier.staff(kennel_id, "override", {
            "action": action, "actor": who.name, "reason": reason,
            "expires_at": active.expires_at.isoformat() if active else None,
        }, retain=True)
        return active

    def label(self, frame_ids: Sequence[str], species: str, who: Principal) -> list[DecisionRecord]:
        """Record what really stood at the door for these frames (audited, counted, announced)."""
        rows = labels.label(self.db, frame_ids, species, who)
        kept = [FieldFrame(r.frame_id, r.kennel_id, r.created_at, data) for r in rows
                if r.kept and (data := self.keeper.read(r.frame_id)) is not None]
        if kept:  # the kennel's own frames become field photos; the next rebuild judges them
            self.library.add_field(rows[0].label, kept)
        for r in rows:
            self.metrics.labels.labels(str(labels.agreed(r)).lower()).inc()
            self.notifier.staff(r.kennel_id, "label", {
                "frame_id": r.frame_id, "label": r.label, "answered": r.species, "door": r.door, "actor": who.name,
            })
        return rows

    def forget_kennel(self, kennel_id: int) -> None:
        """Drop every in-memory state of a kennel (its config changed or it was deleted)."""
        self.kennels.invalidate(kennel_id)
        self.overrides.forget(kennel_id)
        self.windows.forget(kennel_id)
        self.frames.forget(kennel_id)

    def _watch(self) -> None:
        last_check = time.monotonic()
        while not self._stop.wait(self.settings.index_poll_seconds):
            if time.monotonic() - last_check >= self.settings.reconcile_seconds:
                self.reconcile(wait=False)  # another process may have crashed mid-change
                last_check = time.monotonic()
            self.poll_index()

    def reconcile(self, wait: bool) -> None:
        """Index and library agree again after a crash (``PhotoLibrary.reconcile``); never fatal."""
        try:
            self.library.reconcile(wait=wait)
        except Exception:  # noqa: BLE001 - serving the index we have beats not serving
            log.exception("reconciling the index with the library failed")

    def poll_index(self) -> None:
        """Swap in a version written by another process (nightly rebuild, CLI)."""
        try:
            if self.engine.refresh():
                self.metrics.index_swaps.inc()
            self.index_error = None
        except GalleryError as exc:
            self.index_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - keep serving the version we have
            log.exception("index refresh failed")
            self.index_error = f"refresh failed: {exc}"
        self.update_index_metrics()

    def update_index_metrics(self) -> None:
        d = self.engine.serving
        if d is not None:
            self.metrics.set_index(d.version, len(d.gallery), len(d.gallery.names(include_other=False)))

    def ready(self) -> tuple[bool, str]:
        if not self.engine.model_loaded:
            return False, "model not loaded"
        d = self.engine.serving
        if d is None:
            return False, self.index_error or "no index yet: upload species photos (POST /v1/species/{name}/photos)"
        failing = self.frames.decision_log.failing
        if failing is not None:  # every frame would be answered "closed: log unavailable"
            return False, f"decision log cannot be written ({failing}); doors stay shut"
        return True, f"model {self.engine.encoder.spec.name}, index {d.version}"

    # --- rebuild -------------------------------------------------------------------------
    def start_rebuild(self, force: bool = False) -> bool:
        """Start a rebuild in the background; False if one is already running. ``force``: promote
        it even if judging finds it worse (an admin's call, audited)."""
        if not self._rebuild_lock.acquire(blocking=False):
            return False
        self.rebuild_status = RebuildStatus("running", started=datetime.now(timezone.utc))
        threading.Thread(target=self._run_rebuild, args=(force,), name="rebuild", daemon=True).start()
        return True

    def _run_rebuild(self, force: bool = False) -> None:
        status = self.rebuild_status
        try:
            status.report = rebuild(self.library, force=force)
            status.state = "done"
            self.update_index_metrics()
        except Exception as exc:  # noqa: BLE001 - the old version keeps serving
            log.exception("rebuild failed")
            status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            status.finished = datetime.now(timezone.utc)
            self._rebuild_lock.release()

