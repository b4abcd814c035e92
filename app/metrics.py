"""Prometheus metrics, in a registry per app (tests run several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.frames = Counter("kennelgate_frames", "Frames received", ["kennel"], registry=r)
        self.decisions = Counter(
            "kennelgate_decisions", "Frame decisions by door outcome and species", ["door", "species"], registry=r
        )
        self.frames_reused = Counter(
            "kennelgate_frames_reused", "Frames whose scene had not changed: no encoder run (motion gating)",
            ["kennel"], registry=r,
        )
        self.frames_cascaded = Counter(
            "kennelgate_frames_cascaded", "Frames this model was unsure of, answered by the cascade's big tier", registry=r
        )
        self.frames_skipped = Counter(
            "kennelgate_frames_skipped", "Stream frames skipped undecided: the server was behind", ["kennel"], registry=r
        )
        self.frame_errors = Counter("kennelgate_frame_errors", "Frames that failed (door kept shut)", ["kind"], registry=r)
        self.refused = Counter(
            "kennelgate_http_refused", "Requests answered 4xx/5xx, by status (bad input, auth, overload)", ["status"], registry=r
        )
        self.latency = Histogram(
            "kennelgate_frame_latency_seconds", "Decode + embed + decide, per frame", buckets=LATENCY_BUCKETS, registry=r
        )
        self.overrides = Counter(
            "kennelgate_overrides", "Staff door overrides set (release included), by action", ["kennel", "action"], registry=r
        )
        self.override_doors = Counter(
            "kennelgate_override_doors", "Frames whose door a staff override decided, by door", ["kennel", "door"], registry=r
        )
        self.labels = Counter(
            "kennelgate_labels", "Decisions relabelled by staff: whether the door's answer agreed with the label",
            ["agreed"], registry=r,
        )
        self.index_photos = Gauge("kennelgate_index_photos", "Photos in the serving index", registry=r)
        self.index_species = Gauge("kennelgate_index_species", "Species in the serving index", registry=r)
        self.index_version = Gauge("kennelgate_index_version", "Serving index version number", registry=r)
        self.index_swaps = Counter("kennelgate_index_swaps", "Index versions swapped in while serving", registry=r)
        # Monitoring: camera faults, drift, alerts (per kennel)
        self.health_faults = Counter(
            "kennelgate_health_faults", "Frames the health gate stopped, by fault", ["kennel", "fault"], registry=r
        )
        self.kennel_rate = Gauge(
            "kennelgate_kennel_rate", "Share of frames answered other / abstained / faulty, per window",
            ["kennel", "rate", "window"], registry=r,
        )
        self.kennel_score_ks = Gauge(
            "kennelgate_kennel_score_shift", "KS statistic of best-match scores, current vs reference", ["kennel"], registry=r
        )
        self.kennel_drift = Gauge("kennelgate_kennel_drift", "1 while a drift alert is raised", ["kennel"], registry=r)
        self.kennel_camera_fault = Gauge(
            "kennelgate_kennel_camera_fault", "1 while a camera-fault alert is raised", ["kennel"], registry=r
        )
        self.alerts = Counter("kennelgate_alerts", "Alerts raised and cleared", ["kind", "state"], registry=r)

    def set_index(self, version: str, photos: int, species: int) -> None:
        self.index_version.set(int(version.lstrip("v") or 0))
        self.index_photos.set(photos)
        self.index_species.set(species)

    def render(self) -> bytes:
        return generate_latest(self.registry)
