"""All settings in one place; every field can be set as ``KENNELGATE_<NAME>``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from embedder.registry import DEFAULT_MODEL
from kennelgate.health_thresholds import HealthThresholds

HOME_DETECTOR = "health_detector.json.gz"  # where `kennelgate health train` writes


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kennelgate" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KENNELGATE_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    home: Path = Field(Path("kennelgate-home"), description="state: gallery versions, reports")
    model_cache: Path = Field(default_factory=_default_cache, description="built models, shared by all homes")
    model: str = Field(DEFAULT_MODEL, description="model name in the cache, or a model directory")
    providers: str = Field("auto", description="auto, or a comma list: tensorrt,cuda,openvino,cpu")
    threads: int = Field(0, description="ONNX Runtime intra-op threads (0 = one per core)")
    batch_size: int = 16

    # Decision
    method: Literal["contrast", "knn", "prototype"] = Field(
        "contrast", description="contrast: kNN score minus other_weight × the kNN score to photos filed under "
        "'other' (plain kNN when there are none); knn; prototype (index/scoring.py)"
    )
    other_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="the contrast score's weight on 'other' (grouped folds: docs/admit.md)"
    )
    k: int = Field(5, description="neighbours averaged for the kNN score (measured best: docs/results.md)")
    # Chosen on grouped folds (docs/admit.md) with raccoons held out as an unknown animal: Lite1 at
    # 0.95 accepts 93.5% of unseen cats and dogs per frame and lets 4.5% of raccoon frames in; 0.985
    # accepts 97% but lets 22% of unfiled raccoon frames in (15% with other animals filed under
    # 'other'). 0.85 turned one right animal in six away.
    target_accept: float = Field(
        0.95, description="share of a species' own scenes (each held out with its near-twins) that must still be accepted"
    )
    min_margin: float = Field(
        0.025, description="the best species must beat the runner-up (another species or 'other') by this score "
        "margin; closer calls are refused (most cat/dog swaps are within 0.02)"
    )
    twin_cosine: float = Field(
        0.9, description="photos at least this similar (embedding cosine) are one scene for calibration: a burst's "
        "frames or near-duplicates are held out together"
    )
    target_far: float = Field(0.01, description="false-accept rate wanted on photos filed under 'other'")
    reject_ambiguous: bool = Field(
        False, description="refuse when a second species also passes its own threshold (two animals?)"
    )

    # Head count (the animal detector, `kennelgate model build detector`)
    head_count: Literal["auto", "on", "off"] = Field(
        "auto", description="count the animals in accepted frames: auto = when the detector is installed, on = "
        "refuse to start without it, off"
    )
    detector_dir: Optional[Path] = Field(None, description="where the animal detector is (default: MODEL_CACHE/detector)")
    max_animals: int = Field(
        1, ge=1, description="an accepted frame with more animals in view than this keeps the door shut (tailgating)"
    )
    beside_animal_p: float = Field(
        0.1, ge=0.0, le=1.0, description="head count: with one animal found, the strip of the frame beside it keeps "
        "the door shut when the encoder's ImageNet head gives an animal class at least this probability there "
        "(a second animal the detector missed; 0 = off)"
    )
    people_block: bool = Field(
        False, description="a person in view keeps the door shut (per kennel; default off: staff walk dogs in, and the "
        "people are logged)"
    )

    # Frame health gate (KENNELGATE_HEALTH__DARK_P95=40 …; per kennel: the kennel's `health`)
    health: HealthThresholds = Field(default_factory=HealthThresholds)
    health_detector: Optional[Path] = Field(
        None, description="learned fault detectors (bundle); default: <home>/health_detector.json.gz "
        "(`kennelgate health train`) if present, else the packaged ones"
    )

    # Input limits
    max_pixels: int = 50_000_000
    max_bytes: int = 64 * 1024 * 1024
    min_side: int = 16

    # Service
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite file in the home folder")
    auto_migrate: bool = Field(True, description="run Alembic migrations to head on start (embedded default)")
    admin_token: str = Field("", description="bootstrap admin bearer token (more can be made: `kennelgate token admin`)")
    window_k: int = Field(3, description="door opens when K of the last N frames agree on an admitted species")
    window_n: int = 5
    window_seconds: float = Field(2.0, description="frames older than this leave the decision window")
    thumbnails: Literal["none", "rejected", "all"] = Field(
        "rejected", description="which frames keep a small JPEG thumbnail in the decision log"
    )
    thumbnail_size: int = 96
    thumbnail_interval_s: float = Field(1.0, description="at most one thumbnail per kennel per this many seconds")
    decision_retention_days: int = Field(90, description="the nightly job deletes older decisions (0 = keep all)")
    # The field loop: frames worth learning from are kept whole, so staff labels can teach the gallery
    keep_frames: Literal["none", "teachable", "all"] = Field(
        "teachable", description="keep the whole frame of: teachable decisions (kept out, low margin, overridden), all, none"
    )
    keep_frames_mb: float = Field(2000.0, description="disk budget for kept frames; the oldest go first")
    keep_frames_days: int = Field(90, description="kept frames older than this are deleted")
    keep_frames_per_minute: int = Field(12, ge=0, description="at most this many kept frames per kennel per minute "
                                        "(overridden frames always; 0 = no limit)")
    keep_margin: float = Field(0.05, description="an accepted frame whose runner-up species is this close is teachable")
    field_days: int = Field(90, description="the rebuild puts field photos of the last N days in the gallery")
    gallery_cap: int = Field(3000, description="most photos per species in a rebuilt gallery: recent field photos first, "
                                                 "then a replay sample of older ones")
    field_holdout: float = Field(0.25, description="share of labelled field scenes held out to judge a rebuild")
    rebuild_wrong_weight: float = Field(
        10.0, description="judging a rebuild, one frame let in as the wrong species costs as much as this many right "
        "animals kept out: a new gallery is promoted only if its cost on held-out frames is not higher"
    )
    encoder_batch: int = Field(8, description="frames of different kennels that may share one encoder run (1 = no batching)")
    encoder_linger_ms: float = Field(2.0, description="how long a frame waits for others to share its encoder run")
    frame_deadline_ms: float = Field(
        800.0, description="a frame not decided within this of its arrival is answered 503 (WebSocket: skipped) and "
        "never decided late: a late 'open' is a wrong open waiting to happen"
    )
    frames_in_flight: int = Field(
        16, description="frames being decided at once, all kennels; more are refused at once with 503 + Retry-After"
    )
    frames_in_flight_per_kennel: int = Field(
        2, description="frames of one kennel being decided at once; more are refused with 429 + Retry-After"
    )
    stream_backlog: int = Field(
        4, description="frames a WebSocket stream may have waiting; an older frame beyond this is skipped (answered, "
        "not decided) so that answers stay fresh when a device sends faster than the server decides"
    )
    upload_max_files: int = Field(5000, description="files per upload request (zip entries included)")
    upload_max_total_bytes: int = Field(2 * 1024**3, description="uncompressed bytes per upload request")
    index_poll_seconds: float = Field(1.0, description="how often the API looks for a new index version")
    header_timeout_s: float = Field(
        10.0, gt=0, description="a connection that has not sent a whole request head (request line and headers) "
        "within this is answered 408 and closed (slow-header attacks hold sockets otherwise)"
    )
    reconcile_seconds: float = Field(
        30.0, description="how often the API checks that the index agrees with the photo library (after a crash elsewhere)"
    )

    # Motion gating: an unchanged scene reuses the last answer instead of running the encoder
    motion_threshold: float = Field(
        2.5, description="mean grey-level change (0-255, on a 96x72 thumbnail) that counts as a new scene; 0 = off"
    )
    motion_max_skip: int = Field(
        40, description="classify at least every this many frames (2 s at 20 fps) even in a still scene"
    )
    motion_idle_after: int = Field(10, description="unchanged frames in a row after which a scene is idle")
    motion_idle_every: int = Field(
        3, description="in an idle scene whose answer opens nothing, decode only every this many frames (1 = all)"
    )

    # Cascade: frames this model is unsure of go to a bigger model on another KennelGate server
    cascade_url: str = Field("", description="the big tier: another KennelGate server (its POST /v1/classify); empty = none")
    cascade_token: str = Field("", description="a token of the big-tier server (admin or any device token)")
    cascade_margin: float = Field(
        0.03, description="frames whose best score is within this of its threshold go to the big tier "
        "(tune it: kennelgate cascade tune)"
    )
    cascade_timeout_s: float = Field(2.0, description="no answer from the big tier within this = door kept shut")

    # Monitoring and alerts
    fault_alert_window: int = Field(20, description="camera-fault alert: frames looked at")
    fault_alert_count: int = Field(10, description="camera-fault alert when this many of them are faulty")
    drift_reference_frames: int = Field(500, description="a kennel's reference window (its first / last logged frames)")
    drift_window_frames: int = Field(200, description="the recent window compared with the reference")
    drift_rate_delta: float = Field(0.25, description="drift when the other/abstain/fault share moves by more than this")
    drift_score_ks: float = Field(0.4, description="drift when the best-score distribution's KS statistic exceeds this")
    mqtt_url: str = Field("", description="mqtt://[user:pass@]host:1883 (mqtts:// for TLS); empty = no MQTT")
    mqtt_prefix: str = Field("kennelgate", description="topic prefix: <prefix>/kennel/<id>/{decision,door,fault,drift}")
    mqtt_decisions: bool = Field(True, description="publish every frame's decision (door/fault/drift are always sent)")
    mqtt_discovery: bool = Field(True, description="publish Home Assistant discovery configs")
    webhook_urls: str = Field("", description="comma-separated URLs that receive alert JSON by POST")

    @property
    def gallery_dir(self) -> Path:
        return self.home / "gallery"

    @property
    def animal_detector_dir(self) -> Path:
        return self.detector_dir or self.model_cache / "detector"

    @property
    def health_detector_path(self) -> Path:
        from kennelgate.health_detector import PACKAGED

        if self.health_detector is not None:
            return self.health_detector
        trained = self.home / HOME_DETECTOR
        return trained if trained.is_file() else PACKAGED

    @property
    def photos_dir(self) -> Path:
        return self.home / "photos"

    @property
    def frames_dir(self) -> Path:
        """Whole frames kept for learning (``keep_frames``)."""
        return self.home / "frames"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'kennelgate.db').resolve()}"

