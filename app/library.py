"""The photo library: every gallery photo's bytes (content-addressed files) and its database row.

The library is the source of truth; the gallery on disk is derived from it (and rebuilt from it
nightly). Every change takes the index lock and goes: photo files, then the new gallery version
(staged, not yet served), then the database commit, then the version is published (``CURRENT``),
then unused files are deleted. Readers never see an index whose rows are not committed. A crash
before the commit leaves an unpublished version and files nobody refers to; after it, a staged
version that matches the committed rows: ``reconcile`` (run when the service starts, and
periodically) publishes it and cleans up, so index and database always agree again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Sequence

from filelock import FileLock, Timeout
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Photo, Species
from app.db.session import Database
from app.uploads import Candidate
from embedder.batch import embed_sources
from index.folders import IMAGE_SUFFIXES, LabeledPhoto, normalise_species, scan_species
from index.gallery import MIN_PHOTOS, SpeciesPhotos
from kennelgate.engine import Engine, IndexReport

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,62}$")
Progress = Optional[Callable[[int], None]]


class LibraryError(ValueError):
    """A library change that cannot be made as asked (reason for the user in the message)."""


def _commit(s: Session) -> Callable[[str], None]:
    """Commit ``s`` once the new gallery version is staged, before it is published."""

    return lambda version: s.commit()


def _index_ids(gallery) -> dict[str, set[str]]:
    return {sp: set(p.ids) for sp, p in gallery.species.items()}


def species_name(raw: str) -> str:
    try:
        name = normalise_species(raw)
    except ValueError as exc:
        raise LibraryError(str(exc)) from None
    if not _NAME.match(name):
        raise LibraryError(f"invalid species name {raw!r}: use letters, digits, space, '-' or '_' (max 63)")
    return name


class LibraryPhoto(NamedTuple):
    id: int
    species: str
    breed: Optional[str]
    path: Path
    source: str  # "upload" | "field"
    taken_at: Optional[datetime]  # field photos: when the kennel's camera took it
    frame_id: Optional[str]


@dataclass(frozen=True)
class FieldFrame:
    """A kept kennel frame that staff labelled: it becomes a field photo."""

    frame_id: str
    kennel_id: int
    taken_at: datetime
    data: bytes


@dataclass
class AddReport:
    species: str
    added: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    version: str = ""
    photos: int = 0  # the species' photos after the change


class PhotoLibrary:
    def __init__(self, photos_dir: Path, db: Database, engine: Engine) -> None:
        self.root = Path(photos_dir)
        self.db = db
        self.engine = engine
        self.root.mkdir(parents=True, exist_ok=True)
        # One writer at a time across processes (API uploads, CLI, nightly rebuild).
        self.lock = FileLock(str(self.root.parent / ".index.lock"))

    # --- files ---------------------------------------------------------------------------
    def path_of(self, sha256: str, suffix: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def _write(self, sha256: str, suffix: str, data: bytes) -> None:
        path = self.path_of(sha256, suffix)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # a full disk leaves no half-written photo behind
            raise

    def _store(self, species_id: int, name: str, data: bytes, sha256: str, breed: Optional[str]) -> Photo:
        """Write the bytes (idempotent) and return the photo's row, not yet added to a session."""
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix in IMAGE_SUFFIXES else ".img"
        self._write(sha256, suffix, data)
        return Photo(species_id=species_id, breed=breed, sha256=sha256, suffix=suffix,
                     original_name=name[-500:], size_bytes=len(data))

    @staticmethod
    def _count(s: Session, species_id: int) -> int:
        return s.scalar(select(func.count()).select_from(Photo).where(Photo.species_id == species_id))

    def _unlink_unused(self, s: Session, files: set[tuple[str, str]]) -> None:
        for sha, suffix in files:
            if not s.scalar(select(func.count()).select_from(Photo).where(Photo.sha256 == sha)):
                self.path_of(sha, suffix).unlink(missing_ok=True)

    # --- queries -------------------------------------------------------------------------
    @staticmethod
    def get_species(s: Session, name: str) -> Optional[Species]:
        return s.scalar(select(Species).where(Species.name == name))

    def ensure_species(self, s: Session, name: str) -> Species:
        sp = self.get_species(s, name)
        if sp is None:
            sp = Species(name=name)
            s.add(sp)
            s.flush()
        return sp

    def library_photos(self) -> list[LibraryPhoto]:
        """Every stored photo with where it came from (what a rebuild composes the gallery of)."""
        with self.db.session() as s:
            rows = s.execute(select(Photo.id, Species.name, Photo.breed, Photo.sha256, Photo.suffix, Photo.source,
                                    Photo.taken_at, Photo.frame_id).join(Species).order_by(Photo.id)).all()
        return [LibraryPhoto(pid, sp, breed, self.path_of(sha, suf), src, t, fid)
                for pid, sp, breed, sha, suf, src, t, fid in rows]

    def all_photos(self) -> list[tuple[int, str, Optional[str], Path]]:
        """(photo id, species, breed, file) for every stored photo."""
        return [(r.id, r.species, r.breed, r.path) for r in self.library_photos()]

    # --- changes -------------------------------------------------------------------------
    def add(self, species: str, candidates: Sequence[Candidate], on_progress: Progress = None) -> AddReport:
        """Validate, embed and index uploaded photos; bad or duplicate files are reported, not fatal."""
        name = species_name(species)
        report = AddReport(name)
        hashed, seen = [], set()
        with self.db.session() as s:
            sp = self.get_species(s, name)
            known = set(s.scalars(select(Photo.sha256).where(Photo.species_id == sp.id))) if sp else set()
        for c in candidates:
            sha = hashlib.sha256(c.data).hexdigest()
            if sha in known:
                report.rejected.append((c.name, f"duplicate: this photo is already in {name!r}"))
            elif sha in seen:
                report.rejected.append((c.name, "duplicate of another file in this upload"))
            else:
                seen.add(sha)
                hashed.append((c, sha))
        result = embed_sources(self.engine.encoder, [c.data for c, _ in hashed], self.engine.settings.batch_size, on_progress)
        for i, reason in sorted(result.errors.items()):
            report.rejected.append((hashed[i][0].name, reason))
        kept = [hashed[i] for i in result.ok]
        if not kept:
            report.photos = len(known)
            return report
        with self.lock, self.db.session() as s:
            sp = self.ensure_species(s, name)
            total = self._count(s, sp.id) + len(kept)
            if total < MIN_PHOTOS:
                raise LibraryError(
                    f"species {name!r} needs at least {MIN_PHOTOS} usable photos to be recognised; "
                    f"this upload would leave it with {total} (nothing was stored)"
                )
            rows = [self._store(sp.id, c.name, c.data, sha, c.breed) for c, sha in kept]
            s.add_all(rows)
            s.flush()  # assigns ids: the gallery refers to photos by them
            group = SpeciesPhotos(result.vectors, [r.gallery_id for r in rows], [r.breed for r in rows])
            report.added, report.photos = len(rows), total
            report.version = self.engine.extend(name, group, before_publish=_commit(s))
        return report

    def add_field(self, species: str, frames: Sequence[FieldFrame]) -> int:
        """Store labelled kennel frames as field photos of ``species``, not indexed yet: the next
        rebuild decides whether they enter the gallery. A frame labelled again moves to its new
        species. Returns how many new field photos were stored (exact duplicates are skipped)."""
        name = species_name(species)
        ids = [f.frame_id for f in frames]
        with self.lock, self.db.session() as s:
            sp = self.ensure_species(s, name)
            old = list(s.scalars(select(Photo).where(Photo.frame_id.in_(ids))))
            files = {(p.sha256, p.suffix) for p in old}
            for p in old:
                s.delete(p)
            s.flush()
            known = set(s.scalars(select(Photo.sha256).where(Photo.species_id == sp.id)))
            added = 0
            for f in frames:
                sha = hashlib.sha256(f.data).hexdigest()
                if sha in known:
                    continue
                known.add(sha)
                row = self._store(sp.id, f"field/kennel-{f.kennel_id}/{f.frame_id}.jpg", f.data, sha, None)
                row.source, row.kennel_id, row.taken_at, row.frame_id = "field", f.kennel_id, f.taken_at, f.frame_id
                s.add(row)
                added += 1
            s.commit()
            self._unlink_unused(s, files)
        return added

    def add_folder(self, species: str, folder: Path, on_progress: Progress = None) -> AddReport:
        """Import a folder (breeds in sub-folders) as if its photos were uploaded."""
        name = species_name(species)
        photos = scan_species(folder, name)
        candidates, unreadable = [], []
        for p in photos:
            try:
                candidates.append(Candidate(str(p.path), p.path.read_bytes(), p.breed))
            except OSError as exc:
                unreadable.append((str(p.path), f"cannot read file ({exc.strerror or exc})"))
        report = self.add(name, candidates, on_progress)
        report.rejected = unreadable + report.rejected
        return report

    def remove_photos(self, species: str, photo_ids: Sequence[int]) -> str:
        name = species_name(species)
        with self.lock, self.db.session() as s:
            sp = self.get_species(s, name)
            if sp is None:
                raise KeyError(f"no species {name!r}")
            rows = list(s.scalars(select(Photo).where(Photo.species_id == sp.id, Photo.id.in_(list(photo_ids)))))
            missing = set(photo_ids) - {r.id for r in rows}
            if missing:
                raise KeyError(f"species {name!r} has no photo(s) {sorted(missing)}")
            left = self._count(s, sp.id) - len(rows)
            if 0 < left < MIN_PHOTOS:
                raise LibraryError(
                    f"removing these would leave {name!r} with {left} photos (minimum {MIN_PHOTOS}); "
                    "remove the whole species instead"
                )
            files = {(r.sha256, r.suffix) for r in rows}
            for r in rows:
                s.delete(r)
            s.flush()
            if left == 0:
                version = self._drop_from_gallery(name, s)
            else:
                version = self.engine.drop_photos(name, [r.gallery_id for r in rows], before_publish=_commit(s))
            self._unlink_unused(s, files)
        return version

    def remove_species(self, species: str) -> str:
        """Forget a species: its photos, its row and its place in the gallery."""
        name = species_name(species)
        with self.lock, self.db.session() as s:
            sp = self.get_species(s, name)
            if sp is None:
                raise KeyError(f"no species {name!r}")
            files = {(p.sha256, p.suffix) for p in sp.photos}
            s.delete(sp)
            s.flush()
            version = self._drop_from_gallery(name, s)
            self._unlink_unused(s, files)
        return version

    def _drop_from_gallery(self, name: str, s: Session) -> str:
        try:
            return self.engine.remove_species(name, before_publish=_commit(s))
        except KeyError:  # stored but never indexed (e.g. a failed upload): nothing to drop
            s.commit()
            return self.engine.store.current_version() or ""

    def replace_all(self, photos: Sequence[LabeledPhoto], on_progress: Progress = None) -> IndexReport:
        """Make ``photos`` the whole library and index them as one new version (``gallery build``)."""
        for name in {p.species for p in photos}:
            species_name(name)
        kept, vectors, rejected = self.engine.embed_photos(photos, on_progress)
        report = IndexReport(rejected=rejected)
        with self.lock, self.db.session() as s:
            old_files = {(p.sha256, p.suffix) for p in s.scalars(select(Photo))}
            for sp in s.scalars(select(Species)):
                s.delete(sp)
            s.flush()
            gallery = self.engine.empty_gallery()
            for name in sorted({p.species for p in kept}):
                sp = self.ensure_species(s, name)
                rows, rows_vec, seen = [], [], set()
                for i in (i for i, p in enumerate(kept) if p.species == name):
                    try:
                        data = kept[i].path.read_bytes()
                    except OSError as exc:
                        report.rejected.append((str(kept[i].path), f"cannot read file ({exc.strerror or exc})"))
                        continue
                    sha = hashlib.sha256(data).hexdigest()
                    if sha in seen:
                        report.rejected.append((str(kept[i].path), "duplicate of another photo of this species"))
                        continue
                    seen.add(sha)
                    rows.append(self._store(sp.id, str(kept[i].path), data, sha, kept[i].breed))
                    rows_vec.append(i)
                s.add_all(rows)
                s.flush()
                try:
                    gallery.add(name, SpeciesPhotos(vectors[rows_vec], [r.gallery_id for r in rows], [r.breed for r in rows]))
                    report.added[name] = len(rows)
                except ValueError as exc:
                    report.rejected.append((name, str(exc)))
                    s.delete(sp)  # too few usable photos: keep library and index in step
                    s.flush()
            report.version = self.engine.replace_gallery(gallery, before_publish=_commit(s))
            self._unlink_unused(s, old_files)
        return report

    # --- after a crash ---------------------------------------------------------------------
    def reconcile(self, wait: bool = True) -> list[str]:
        """Make the served index agree with the committed library again, after a crash anywhere
        in a change; returns what was done (empty when all was in order). With ``wait=False`` it
        gives up at once if another change holds the lock (it will be back)."""
        try:
            self.lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return []
        try:
            return self._reconcile()
        finally:
            self.lock.release()

    def _reconcile(self) -> list[str]:
        store, done = self.engine.store, []
        for p in store.clean_temporary() + self._clean_uploads():
            done.append(f"removed temporary {p.name}")
        library = self._library_ids()
        uploads = self._library_ids(source="upload")
        field = set().union(*self._library_ids(source="field").values())
        for version in reversed(store.unpublished()):
            staged = {sp: ids - field for sp, ids in _index_ids(store.load(version=version).gallery).items()}
            # Field photos enter the gallery only by a rebuild that judged them: uploads must match.
            if {sp: ids for sp, ids in staged.items() if ids} == uploads:  # committed, not yet published
                store.publish(version)
                done.append(f"published {version}: it matches the committed library")
                break
        for version in store.unpublished():
            store.discard(version)
            done.append(f"discarded {version}: staged, never committed")
        if store.current_version() is None:
            return done
        self.engine.refresh()
        gallery = self.engine.snapshot().gallery
        served = _index_ids(gallery)
        if not library and served:
            log.warning("index has photos but the library has none (built without the library?); left as is")
            return done
        phantoms = {sp: ids - library.get(sp, set()) for sp, ids in served.items() if ids - library.get(sp, set())}
        if phantoms:
            fixed = gallery.copy()
            for sp, ids in phantoms.items():
                keep = [i for i, pid in enumerate(gallery.species[sp].ids) if pid not in ids]
                old = gallery.species[sp]
                if len(keep) < MIN_PHOTOS:
                    fixed.remove(sp)
                else:
                    fixed.add(sp, SpeciesPhotos(old.vectors[keep], [old.ids[i] for i in keep], [old.breeds[i] for i in keep]), replace=True)
            version = self.engine.replace_gallery(fixed)
            done.append(f"published {version} without photos the library does not have: "
                        + ", ".join(f"{sp} ({len(ids)})" for sp, ids in sorted(phantoms.items())))
        missing = sum(len(ids - served.get(sp, set())) for sp, ids in uploads.items())
        if missing:
            done.append(f"{missing} library photos are not in the index: the next rebuild adds them")
        for line in done:
            log.warning("reconcile: %s", line)
        return done

    def _library_ids(self, source: Optional[str] = None) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        q = select(Photo.id, Species.name).join(Species)
        if source is not None:
            q = q.where(Photo.source == source)
        with self.db.session() as s:
            for pid, name in s.execute(q):
                out.setdefault(name, set()).add(f"photo:{pid}")
        return out

    def _clean_uploads(self) -> list[Path]:
        gone = list(self.root.glob("*/.upload-*"))
        for p in gone:
            p.unlink(missing_ok=True)
        return gone

    def counts(self) -> dict[str, int]:
        with self.db.session() as s:
            rows = s.execute(
                select(Species.name, func.count(Photo.id)).outerjoin(Photo).group_by(Species.name).order_by(Species.name)
            ).all()
        return {name: n for name, n in rows}

