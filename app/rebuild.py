"""Nightly rebuild: re-embed every library photo with the current model, compose the gallery
(recent field photos plus a replay sample of older ones, capped per species), judge it against
the serving version on held-out labelled field frames, and swap it in only if it is not worse.

The long part (embedding) runs without the index lock, so uploads and frames go on. Under the
lock, photos added or removed meanwhile are reconciled, then the new version is written and
``CURRENT`` replaced atomically; a crash before that leaves the old version serving.

Field photos are kennel frames that staff labelled (``app.labels``). A share of their near-twin
groups (one visit's frames), chosen by a hash of the group, is held out to judge: both the
serving version's photos and the new gallery's, without the held-out ones, decide them. Only
held-out scenes the serving version already took in judge (so a new batch of labels, right or
wrong, never judges itself), with a sample of uploaded photos (the internet-photo test).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

import numpy as np

from app import audit
from app.db.models import as_utc
from app.library import LibraryPhoto, PhotoLibrary
from embedder.batch import embed_sources
from index.folders import OTHER
from index.gallery import SpeciesPhotos
from index.scoring import twin_groups
from index.store import GalleryError
from kennelgate.deciders import decider_from

log = logging.getLogger(__name__)
UPLOAD_JUDGE_SHARE = 0.1  # uploaded photo groups held out to check that the internet-photo test does not get worse
UPLOAD_JUDGE_CAP = 100  # photos per species
UPLOAD_SLACK = 0.005  # the new gallery may cost this share of them more (noise)


@dataclass
class Judgement:
    """Held-out photos decided by the serving version's gallery and by the new one, both built
    without the held-out photos: field frames staff labelled, and a sample of uploaded photos."""

    frames: int = 0
    serving_right: int = 0
    candidate_right: int = 0
    serving_wrong: int = 0  # let in as a species other than the label
    candidate_wrong: int = 0
    per_species: dict[str, dict] = field(default_factory=dict)  # label → {frames, serving_right, candidate_right}

    def cost(self, who: str, wrong_weight: float) -> float:
        """Frames not answered right, each wrong admission counted ``wrong_weight`` times (a wrong
        open costs more than a right animal kept waiting)."""
        right, wrong = getattr(self, f"{who}_right"), getattr(self, f"{who}_wrong")
        return (self.frames - right - wrong) + wrong_weight * wrong

    def not_worse(self, wrong_weight: float, slack: float = 0.0) -> bool:
        return self.cost("candidate", wrong_weight) <= self.cost("serving", wrong_weight) + slack

    def line(self) -> str:
        return (f"{self.candidate_right}/{self.frames} right, {self.candidate_wrong} let in wrongly "
                f"(serving version: {self.serving_right}/{self.frames}, {self.serving_wrong})")


@dataclass
class RebuildReport:
    version: str = ""
    previous: Optional[str] = None
    photos: int = 0
    species: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo or species, reason)
    seconds: float = 0.0
    promoted: bool = True
    why: str = ""  # why the new version was (not) promoted
    changes: dict[str, dict] = field(default_factory=dict)  # species → before, after, field, held_out
    field_judgement: Optional[Judgement] = None
    upload_judgement: Optional[Judgement] = None


def _embed(library: PhotoLibrary, rows: list[LibraryPhoto], on_progress, report: RebuildReport,
           failed: set[int]) -> dict[int, np.ndarray]:
    engine = library.engine
    result = embed_sources(engine.encoder, [r.path for r in rows], engine.settings.batch_size, on_progress)
    for i, reason in sorted(result.errors.items()):
        failed.add(rows[i].id)
        report.skipped.append((f"photo {rows[i].id} ({rows[i].path.name})", reason))
    return {rows[i].id: result.vectors[j] for j, i in enumerate(result.ok)}


def held_out(rows: list[LibraryPhoto], vectors: dict[int, np.ndarray], share: float, twin_cosine: float,
             cap: Optional[int] = None) -> set[int]:
    """Photos held out to judge a rebuild: whole near-twin groups (one visit's frames, one photo
    session), chosen by a hash of the group, so the choice is stable from night to night; at most
    ``cap`` photos per species."""
    if share <= 0:
        return set()
    out: set[int] = set()
    for name in sorted({r.species for r in rows}):
        mine = [r for r in rows if r.species == name and r.id in vectors]
        if not mine:
            continue
        groups = twin_groups(np.stack([vectors[r.id] for r in mine]), twin_cosine)
        chosen = 0
        for g in sorted(set(groups.tolist())):
            members = [r for r, lab in zip(mine, groups) if lab == g]
            key = min(r.frame_id or f"photo:{r.id}" for r in members)
            if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share:
                if cap is not None and chosen + len(members) > cap:
                    continue
                out.update(r.id for r in members)
                chosen += len(members)
    return out


def compose(rows: list[LibraryPhoto], excluded: set[int], cap: int, field_days: int,
            now: Optional[datetime] = None, seed: int = 0) -> dict[str, list[LibraryPhoto]]:
    """Per species: the field photos of the last ``field_days`` (newest first), then a replay
    sample of older photos (uploads and older field photos), up to ``cap`` in all."""
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=field_days)
    rng = random.Random(seed)
    out = {}
    for name in sorted({r.species for r in rows}):
        mine = [r for r in rows if r.species == name and r.id not in excluded]
        recent = sorted((r for r in mine if r.source == "field" and _aware(r.taken_at) >= since),
                        key=lambda r: _aware(r.taken_at), reverse=True)[:cap]
        taken = {r.id for r in recent}
        older = [r for r in mine if r.id not in taken]
        room = max(0, cap - len(recent))
        out[name] = recent + (older if len(older) <= room else rng.sample(older, room))
    return out


def judge(serving, candidate, vectors: np.ndarray, labels: list[str]) -> Judgement:
    j = Judgement(frames=len(labels))
    for who, decider in (("serving", serving), ("candidate", candidate)):
        decisions = decider.decide(vectors) if decider is not None and len(labels) else [None] * len(labels)
        for label, d in zip(labels, decisions):
            accepted = d is not None and d.accepted
            right = (not accepted) if label == OTHER else (accepted and d.species == label)
            wrong = accepted and d.species != label
            s = j.per_species.setdefault(label, {"frames": 0, "serving_right": 0, "candidate_right": 0})
            if who == "serving":
                s["frames"] += 1
            s[f"{who}_right"] += right
            setattr(j, f"{who}_right", getattr(j, f"{who}_right") + right)
            setattr(j, f"{who}_wrong", getattr(j, f"{who}_wrong") + wrong)
    return j


def _gallery(engine, members: dict[str, list[int]], vectors: dict[int, np.ndarray], breeds: dict[int, Optional[str]],
             report: Optional[RebuildReport] = None):
    gallery = engine.empty_gallery()
    for name, ids in members.items():
        if not ids:
            if report is not None:
                report.skipped.append((f"species {name}", "no usable photos"))
            continue
        try:
            gallery.add(name, SpeciesPhotos(np.stack([vectors[i] for i in ids]), [f"photo:{i}" for i in ids],
                                            [breeds[i] for i in ids]))
        except ValueError as exc:
            if report is not None:
                report.skipped.append((f"species {name}", str(exc)))
    return gallery


def _a_b(engine, serving, chosen: dict[str, list[int]], out: set[int], vectors: dict[int, np.ndarray],
         breeds: dict[int, Optional[str]]):
    """Deciders for the serving version's photos and for the new gallery's, both without the
    held-out photos ``out`` and freshly calibrated: what judging compares."""
    known = set(vectors)
    before = {name: [pid for pid in _photo_ids(p.ids) if pid in known and pid not in out]
              for name, p in serving.gallery.species.items()}
    after = {name: [i for i in ids if i not in out] for name, ids in chosen.items()}
    deciders = []
    for members in (before, after):
        g = _gallery(engine, members, vectors, breeds)
        deciders.append(decider_from(engine.settings, g, engine.calibrate(g)) if g.species else None)
    return deciders


def _judge(a_b, judged: list[LibraryPhoto], vectors: dict[int, np.ndarray]) -> Judgement:
    if not judged:
        return Judgement()
    return judge(a_b[0], a_b[1], np.stack([vectors[r.id] for r in judged]), [r.species for r in judged])


def rebuild(library: PhotoLibrary, on_progress: Optional[Callable[[int], None]] = None,
            force: bool = False) -> RebuildReport:
    """Re-embed, compose, judge; publish the new version if it is not worse (or ``force``)."""
    t0 = time.perf_counter()
    engine = library.engine
    settings = engine.settings
    report = RebuildReport(previous=engine.store.current_version())
    rows = library.library_photos()
    if not rows and report.previous is None:
        log.info("no photos stored and no index yet: nothing to rebuild")
        report.seconds = time.perf_counter() - t0
        return report
    failed: set[int] = set()
    vectors = _embed(library, rows, on_progress, report, failed)
    with library.lock:
        now = library.library_photos()  # uploads/removals that happened while we embedded
        new = [r for r in now if r.id not in vectors and r.id not in failed]
        if new:
            vectors.update(_embed(library, new, None, report, failed))
        now = [r for r in now if r.id in vectors]
        breeds = {r.id: r.breed for r in now}
        holdout = held_out([r for r in now if r.source == "field"], vectors, settings.field_holdout, settings.twin_cosine)
        chosen = {name: [r.id for r in members]
                  for name, members in compose(now, set(), settings.gallery_cap, settings.field_days).items()}
        gallery = _gallery(engine, chosen, vectors, breeds, report)
        serving = _serving(engine) if report.previous else None
        by_id = {r.id: r for r in now}
        for name in sorted(set(chosen) | set(serving.gallery.species if serving else {})):
            ids = chosen.get(name, []) if name in gallery.species else []
            if ids:
                report.species[name] = len(ids)
            report.changes[name] = {
                "before": len(serving.gallery.species[name]) if serving and name in serving.gallery.species else 0,
                "after": len(ids), "field": sum(by_id[i].source == "field" for i in ids),
                "held_out": sum(1 for i in holdout if by_id[i].species == name),
            }
        if any(r.source == "field" for r in now) and serving is not None:
            # Judges: held-out field scenes the serving version already took in (labels trusted
            # before tonight: a new batch never judges itself), and a sample of uploaded photos.
            served = {pid for p in serving.gallery.species.values() for pid in _photo_ids(p.ids)}
            judged_field = [by_id[i] for i in sorted(holdout) if i in served]
            uploads = [r for r in now if r.source == "upload"]
            sample = held_out(uploads, vectors, UPLOAD_JUDGE_SHARE, settings.twin_cosine, cap=UPLOAD_JUDGE_CAP)
            judged_uploads = [by_id[i] for i in sorted(sample)]
            a_b = _a_b(engine, serving, chosen, {r.id for r in judged_field} | sample, vectors, breeds)
            report.field_judgement = fj = _judge(a_b, judged_field, vectors)
            report.upload_judgement = uj = _judge(a_b, judged_uploads, vectors)
            w = settings.rebuild_wrong_weight
            report.promoted = fj.not_worse(w) and uj.not_worse(w, slack=max(1.0, UPLOAD_SLACK * uj.frames))
            field_line = f"held-out field frames: {fj.line()}" if fj.frames else "no trusted held-out field frames yet"
            report.why = (f"{field_line}; held-out uploaded photos: {uj.line()}: "
                          + ("not worse" if report.promoted else "worse"))
        else:
            report.why = "no field photos" if serving is not None else "no serving version to compare with"
        if not report.promoted and force:
            report.promoted = True
            report.why += "; promoted anyway (forced)"
        if report.promoted:
            report.version = engine.replace_gallery(gallery)
        else:
            report.version = report.previous or ""
            report.why += f"; {report.previous} keeps serving"
    report.photos = len(gallery)
    report.seconds = time.perf_counter() - t0
    with library.db.session() as s:  # the audit trail says what each rebuild did, and why
        audit.event(s, "rebuild", "rebuild_result", f"index {report.version}", {
            "previous": report.previous, "promoted": report.promoted, "why": report.why, "photos": report.photos,
            "changes": report.changes,
        })
    log.info("rebuilt index %s → %s (%s): %d photos in %.1fs; %s", report.previous, report.version,
             "promoted" if report.promoted else "not promoted", report.photos, report.seconds, report.why)
    return report


def _photo_ids(gallery_ids) -> list[int]:
    """Library photo ids of a gallery's entries (``photo:<id>``; entries built without the library have none)."""
    return [int(x.split(":", 1)[1]) for x in gallery_ids if x.startswith("photo:")]


def _serving(engine):
    """The serving version's decider (loaded from the store in a CLI process), or None when it
    cannot judge: made with another model, or unreadable."""
    try:
        return engine.serving or engine.decider
    except (GalleryError, OSError, ValueError) as exc:
        log.warning("the serving version cannot judge this rebuild: %s", exc)
        return None


def _aware(t: Optional[datetime]) -> datetime:
    return as_utc(t) if t is not None else datetime.min.replace(tzinfo=timezone.utc)

