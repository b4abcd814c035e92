"""The pipeline in one place: image → encoder → embedding → gallery search → decision.

The CLI and the service both drive this object; it owns the encoder and the gallery store.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from embedder import registry
from embedder.batch import embed_sources
from embedder.detector import MODEL_FILE as DETECTOR_FILE, Detector, DetectorError
from embedder.images import ImageLimits, ImageSource
from embedder.runtime import Encoder
from index.calibration import Calibration
from index.decision import Decider, Decision
from index.folders import LabeledPhoto, normalise_species
from index.gallery import Gallery, SpeciesPhotos
from index.store import GalleryError, GalleryStore, Snapshot
from kennelgate import health_detector as detectors
from kennelgate.health import Health, HealthThresholds
from kennelgate.health_features import FrameFeatures, frame_features
from kennelgate.deciders import calibrate_from, decider_from
from kennelgate.faults import crash_point
from kennelgate.health_detector import FaultDetector
from kennelgate.pipeline import BigTier, Embed, FramePipeline
from kennelgate.settings import Settings

log = logging.getLogger(__name__)
BeforePublish = Optional[Callable[[str], None]]  # runs with the staged version, before it is published

Progress = Optional[Callable[[int], None]]


@dataclass
class IndexReport:
    """What an indexing run did, per species, with every rejected file and its reason."""

    added: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    version: str = ""


@dataclass
class Classified:
    source: str
    decision: Optional[Decision] = None
    error: Optional[str] = None
    health: Health = field(default_factory=Health)
    animals: list[dict] = field(default_factory=list)  # the head count's animals (when it ran)
    crowd: str = ""  # why the head count refused an accepted answer
    people: int = 0  # people the head count saw (when it ran)

    def as_record(self) -> dict:
        if self.error is not None:
            return {"path": self.source, "error": self.error}
        if not self.health.ok:
            return {"path": self.source, "species": None, "accepted": False, "health": self.health.fault,
                    "reason": f"camera fault ({self.health.detail}); not classified"}
        d = self.decision
        return {
            "path": self.source,
            "species": "other" if self.crowd else d.species,
            "score": round(d.score, 4),
            "accepted": d.accepted and not self.crowd,
            "health": self.health.fault,
            "breed": d.breed,
            "top": [[n, s] for n, s in d.top],
            "reason": self.crowd or d.reason,
            "animals": self.animals,
            "people": self.people,
        }


class Engine:
    def __init__(self, settings: Settings, on_model_build: Optional[Callable[[str], None]] = None) -> None:
        self.settings = settings
        self.store = GalleryStore(settings.gallery_dir)
        self._on_model_build = on_model_build
        self._encoder: Optional[Encoder] = None
        self._snapshot: Optional[Snapshot] = None
        self._decider: Optional[Decider] = None
        self._swap = threading.RLock()  # serialises version changes; frames read without it
        self._counter: Optional[Detector] = None
        self._counter_checked = False

    # --- encoder -------------------------------------------------------------------------
    @property
    def limits(self) -> ImageLimits:
        s = self.settings
        return ImageLimits(max_pixels=s.max_pixels, max_bytes=s.max_bytes, min_side=s.min_side)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            s = self.settings
            model_dir = registry.resolve(s.model, s.model_cache, on_build=self._on_model_build)
            self._encoder = Encoder(model_dir, providers=s.providers, threads=s.threads, limits=self.limits)
        return self._encoder

    def embed_photos(self, photos: Sequence[LabeledPhoto], on_progress: Progress = None):
        result = embed_sources(self.encoder, [p.path for p in photos], self.settings.batch_size, on_progress)
        kept = [photos[i] for i in result.ok]
        rejected = [(str(photos[i].path), reason) for i, reason in sorted(result.errors.items())]
        return kept, result.vectors, rejected

    @property
    def animal_detector(self) -> Optional[Detector]:
        """The head count's detector: loaded once when installed (``head_count=auto``), required
        with ``head_count=on`` (raises DetectorError with what to do), never with ``off``."""
        mode = self.settings.head_count
        if mode == "off" or self._counter_checked:
            return self._counter
        with self._swap:
            if not self._counter_checked:
                if mode == "on" or (self.settings.animal_detector_dir / DETECTOR_FILE).is_file():
                    try:
                        self._counter = Detector(self.settings.animal_detector_dir)
                    except DetectorError as exc:
                        if mode == "on":
                            raise
                        log.warning("head count off: %s", exc)
                self._counter_checked = True
        return self._counter

    @property
    def health_detector(self) -> FaultDetector:
        """The learned camera-fault detectors in force (re-read when their file changes)."""
        return detectors.get(self.settings.health_detector_path)

    # --- gallery -------------------------------------------------------------------------
    def empty_gallery(self) -> Gallery:
        enc = self.encoder
        return Gallery(fingerprint=enc.fingerprint, dim=enc.dim, model_name=enc.spec.name)

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self._snapshot = self.store.load(fingerprint=self.encoder.fingerprint)
        return self._snapshot

    def _calibrate(self, gallery: Gallery, previous: Optional[Calibration] = None, changed=None) -> Calibration:
        return calibrate_from(self.settings, gallery, previous, changed)

    def _commit(self, gallery: Gallery, calibration: Calibration, before_publish: BeforePublish = None) -> str:
        """Stage the version, let the caller commit what refers to it (``before_publish``: the
        library's database rows), then publish it. A crash before the caller's commit leaves an
        unpublished version nobody serves; a crash after it, a staged version that matches the
        committed rows, which ``PhotoLibrary.reconcile`` publishes. Readers never see a version
        whose rows were not committed."""
        with self._swap:
            version = self.store.stage(gallery, calibration)
            crash_point("gallery.staged")
            if before_publish is not None:
                try:
                    before_publish(version)
                except BaseException:
                    self.store.discard(version)
                    raise
            crash_point("gallery.committed")
            self.store.publish(version)
            crash_point("gallery.published")
            snap = Snapshot(gallery, calibration, version)
            self._snapshot, self._decider = snap, self._make_decider(snap)
        return version

    @staticmethod
    def group_photos(kept: Sequence[LabeledPhoto], vectors: np.ndarray) -> dict[str, SpeciesPhotos]:
        groups: dict[str, SpeciesPhotos] = {}
        for name in sorted({p.species for p in kept}):
            rows = [i for i, p in enumerate(kept) if p.species == name]
            groups[name] = SpeciesPhotos(
                vectors[rows], [str(kept[i].path) for i in rows], [kept[i].breed for i in rows]
            )
        return groups

    def gallery_from(self, kept: Sequence[LabeledPhoto], vectors: np.ndarray, report: Optional[IndexReport] = None) -> Gallery:
        """A gallery of embedded photos; a species with too few usable photos goes to ``report.rejected``."""
        gallery = self.empty_gallery()
        for name, group in self.group_photos(kept, vectors).items():
            try:
                gallery.add(name, group)
                if report is not None:
                    report.added[name] = len(group)
            except ValueError as exc:
                if report is None:
                    raise
                report.rejected.append((name, str(exc)))
        return gallery

    def _latest(self) -> tuple[Gallery, Optional[Calibration]]:
        """A private copy of the newest stored gallery (another process may have written one)."""
        self.refresh()
        try:
            snap = self.snapshot()
            return snap.gallery.copy(), snap.calibration
        except GalleryError as exc:  # no gallery yet: start one (a damaged or foreign one is an error)
            if self.store.current_version() is not None:
                raise
            log.info("starting a new gallery (%s)", exc)
            return self.empty_gallery(), None

    def extend(self, name: str, photos: SpeciesPhotos, replace: bool = False, before_publish: BeforePublish = None) -> str:
        """Add embedded photos to species ``name`` (created if new) and store a new version."""
        gallery, previous = self._latest()
        gallery.add(name, photos, replace=replace)
        return self._commit(gallery, self._calibrate(gallery, previous, changed={name}), before_publish)

    def drop_photos(self, name: str, ids: Sequence[str], before_publish: BeforePublish = None) -> str:
        """Remove some photos of a species; refused if fewer than the minimum would be left."""
        gallery, previous = self._latest()
        if name not in gallery.species:
            raise KeyError(f"no species {name!r} in the gallery")
        old, gone = gallery.species[name], set(ids)
        keep = [i for i, pid in enumerate(old.ids) if pid not in gone]
        photos = SpeciesPhotos(old.vectors[keep], [old.ids[i] for i in keep], [old.breeds[i] for i in keep])
        gallery.add(name, photos, replace=True)
        return self._commit(gallery, self._calibrate(gallery, previous, changed={name}), before_publish)

    def calibrate(self, gallery: Gallery) -> Calibration:
        """Fresh thresholds for every species of ``gallery`` (nothing is stored)."""
        return self._calibrate(gallery)

    def replace_gallery(self, gallery: Gallery, before_publish: BeforePublish = None,
                        calibration: Optional[Calibration] = None) -> str:
        """Store ``gallery`` as the new version with fresh thresholds for every species (or the
        ``calibration`` already made for it)."""
        return self._commit(gallery, calibration or self._calibrate(gallery), before_publish)

    def remove_species(self, species: str, before_publish: BeforePublish = None) -> str:
        gallery, previous = self._latest()
        name = normalise_species(species)
        gallery.remove(name)
        return self._commit(gallery, self._calibrate(gallery, previous, changed={name}), before_publish)

    # --- decisions -----------------------------------------------------------------------
    def _make_decider(self, snap: Snapshot) -> Decider:
        # recalibrated when the settings changed since the gallery was saved
        decider = decider_from(self.settings, snap.gallery, snap.calibration, version=snap.version)
        decider.decide(np.zeros((1, snap.gallery.dim), np.float32))  # build FAISS indexes now, not on a frame
        return decider

    @property
    def serving(self) -> Optional[Decider]:
        """The decider in use, or None while no gallery is loaded (never loads one)."""
        return self._decider

    @property
    def model_loaded(self) -> bool:
        return self._encoder is not None

    @property
    def decider(self) -> Decider:
        if self._decider is None:
            self._decider = self._make_decider(self.snapshot())
        return self._decider

    def refresh(self) -> bool:
        """Load the stored current version if it is not the one in use (another process wrote it).

        The new decider is built completely before it replaces the old one, so a frame being
        classified meanwhile uses one whole version or the other.
        """
        with self._swap:  # never let a slow load overwrite a newer version committed meanwhile
            current = self.store.current_version()
            if current is None or (self._snapshot is not None and self._snapshot.version == current):
                return False
            snap = self.store.load(fingerprint=self.encoder.fingerprint, version=current)
            decider = self._make_decider(snap)
            self._snapshot, self._decider = snap, decider
        log.info("gallery version %s loaded (%d photos)", snap.version, len(snap.gallery))
        return True

    def pipeline(
        self, embed: Optional[Embed] = None, big_tier: Optional[BigTier] = None, decider: Optional[Decider] = None,
        features: Optional[Callable[[Image.Image], FrameFeatures]] = None,
    ) -> FramePipeline:
        """The frame pipeline on this engine's encoder, gallery and fault detectors (read per call,
        so a new gallery version or retrained detector is used from the next frame on).
        ``decider``: a fixed one instead (an evaluation's own gallery). ``embed``, ``features``:
        memoised ones (a study that runs the same frames in every trial)."""
        s = self.settings
        return FramePipeline(
            decode=lambda source: self.encoder.load(source),
            embed=embed or (lambda images: self.encoder.embed(images).vectors),
            decider=(lambda: decider) if decider is not None else (lambda: self.decider),
            detector=lambda: self.health_detector,
            limits=self.limits,
            big_tier=big_tier,
            cascade_margin=s.cascade_margin,
            counter=lambda: self.animal_detector,
            features=features or frame_features,
            imagenet=lambda images: self.encoder.embed(images).logits,
            beside_animal_p=s.beside_animal_p,
        )

    def classify(
        self,
        sources: Sequence[ImageSource],
        names: Optional[Sequence[str]] = None,
        on_progress: Progress = None,
        health: Optional[HealthThresholds] = None,
        chunk: int = 64,
        decider: Optional[Decider] = None,
    ) -> list[Classified]:
        """Classify many images (lone photos: no camera memory); a bad one becomes an error record
        and the rest go on. Each goes through the frame pipeline, health gate included, as in the
        service."""
        names = list(names) if names is not None else [str(s) for s in sources]
        thresholds = health if health is not None else self.settings.health
        pipeline = self.pipeline(decider=decider)
        out: list[Classified] = []
        for start in range(0, len(sources), chunk):
            part = list(sources[start : start + chunk])
            results = pipeline.run(part, health=thresholds, batch=self.settings.batch_size,
                                   max_animals=self.settings.max_animals, people_block=self.settings.people_block)
            for name, r in zip(names[start : start + chunk], results):
                out.append(Classified(name, r.decision if r.health.ok else None, r.message if r.error else None, r.health,
                                      r.animals, r.crowd, r.people))
            if on_progress:
                on_progress(len(part))
        return out
