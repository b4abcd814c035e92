"""Nightly rebuild: re-embed every library photo with the current model and swap the index in.

The long part (embedding) runs without the index lock, so uploads and frames go on. Under the
lock, photos added or removed meanwhile are reconciled, then the new version is written and
``CURRENT`` replaced atomically; a crash before that leaves the old version serving.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from app.library import PhotoLibrary
from embedder.batch import embed_sources
from index.gallery import SpeciesPhotos

log = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    version: str = ""
    previous: Optional[str] = None
    photos: int = 0
    species: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo or species, reason)
    seconds: float = 0.0


def _embed(library: PhotoLibrary, rows, on_progress, report: RebuildReport, failed: set[int]) -> dict[int, np.ndarray]:
    engine = library.engine
    result = embed_sources(engine.encoder, [path for _, _, _, path in rows], engine.settings.batch_size, on_progress)
    for i, reason in sorted(result.errors.items()):
        failed.add(rows[i][0])
        report.skipped.append((f"photo {rows[i][0]} ({rows[i][3].name})", reason))
    return {rows[i][0]: result.vectors[j] for j, i in enumerate(result.ok)}


def rebuild(library: PhotoLibrary, on_progress: Optional[Callable[[int], None]] = None) -> RebuildReport:
    t0 = time.perf_counter()
    engine = library.engine
    report = RebuildReport(previous=engine.store.current_version())
    rows = library.all_photos()
    if not rows and report.previous is None:
        log.info("no photos stored and no index yet: nothing to rebuild")
        report.seconds = time.perf_counter() - t0
        return report
    failed: set[int] = set()
    vectors = _embed(library, rows, on_progress, report, failed)
    with library.lock:
        now = library.all_photos()  # uploads/removals that happened while we embedded
        new = [r for r in now if r[0] not in vectors and r[0] not in failed]
        if new:
            vectors.update(_embed(library, new, None, report, failed))
        gallery = engine.empty_gallery()
        for name in sorted({sp for _, sp, _, _ in now}):
            mine = [(pid, breed) for pid, sp, breed, _ in now if sp == name and pid in vectors]
            if not mine:
                report.skipped.append((f"species {name}", "no usable photos"))
                continue
            group = SpeciesPhotos(
                np.stack([vectors[pid] for pid, _ in mine]), [f"photo:{pid}" for pid, _ in mine], [b for _, b in mine]
            )
            try:
                gallery.add(name, group)
            except ValueError as exc:
                report.skipped.append((f"species {name}", str(exc)))
                continue
            report.species[name] = len(group)
        report.version = engine.replace_gallery(gallery)
    report.photos = len(gallery)
    report.seconds = time.perf_counter() - t0
    log.info("rebuilt index %s → %s: %d photos in %.1fs", report.previous, report.version, report.photos, report.seconds)
    return report

