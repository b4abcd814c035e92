"""The photo library and the rebuild: library and index stay in step, crashes leave the old index."""

import pytest

from app.db import migrate
from app.db.session import Database
from app.library import LibraryError, PhotoLibrary
from app.rebuild import rebuild
from app.uploads import Candidate
from kennelgate.engine import Engine
from tests.conftest import DATASETS, need_datasets

pytestmark = pytest.mark.integration


@pytest.fixture
def library(settings, default_model):
    need_datasets()
    settings.home.mkdir(parents=True)
    migrate.upgrade(settings.db_url)
    db = Database(settings.db_url)
    yield PhotoLibrary(settings.photos_dir, db, Engine(settings))
    db.dispose()


def _cands(sub: str, sl: slice) -> list[Candidate]:
    return [Candidate(f.name, f.read_bytes()) for f in sorted((DATASETS / sub).iterdir())[sl]]


def test_rebuild_reconciles_uploads_made_while_it_embeds(library):
    library.add("cat", _cands("catsdogs/cat", slice(0, 40)))
    library.add("dog", _cands("catsdogs/dog", slice(0, 40)))
    raccoons = _cands("raccoon", slice(0, 20))
    added = []

    def upload_midway(n: int) -> None:
        if not added:  # an admin upload lands while the rebuild is embedding (lock not held)
            added.append(library.add("raccoon", raccoons))

    report = rebuild(library, on_progress=upload_midway)
    assert added and added[0].version < report.version
    snap = library.engine.store.load()
    assert snap.version == report.version
    assert {n: len(p) for n, p in snap.gallery.species.items()} == {"cat": 40, "dog": 40, "raccoon": 20}
    assert library.counts() == {"cat": 40, "dog": 40, "raccoon": 20}


def test_crash_during_rebuild_keeps_the_old_index(library, monkeypatch):
    library.add("cat", _cands("catsdogs/cat", slice(0, 20)))
    before = library.add("dog", _cands("catsdogs/dog", slice(0, 20))).version

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(library.engine.store, "stage", crash)
    with pytest.raises(OSError):
        rebuild(library)
    monkeypatch.undo()
    assert library.engine.store.current_version() == before
    assert len(library.engine.store.load().gallery) == 40
    assert not library.lock.is_locked


def test_failed_index_write_stores_no_rows(library, monkeypatch):
    library.add("cat", _cands("catsdogs/cat", slice(0, 10)))
    monkeypatch.setattr(library.engine.store, "stage", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        library.add("dog", _cands("catsdogs/dog", slice(0, 10)))
    assert library.counts() == {"cat": 10}  # the rows rolled back with the failed index write


def test_removing_photos_and_species(library):
    library.add("cat", _cands("catsdogs/cat", slice(0, 6)))
    library.add("dog", _cands("catsdogs/dog", slice(0, 6)))
    ids = [pid for pid, sp, _, _ in library.all_photos() if sp == "cat"]
    with pytest.raises(LibraryError, match="minimum"):
        library.remove_photos("cat", ids[:4])
    library.remove_photos("cat", ids[:2])
    assert len(library.engine.store.load().gallery.species["cat"]) == 4
    files = [p for _, sp, _, p in library.all_photos() if sp == "dog"]
    library.remove_species("dog")
    assert "dog" not in library.engine.store.load().gallery.species and not any(f.exists() for f in files)
    with pytest.raises(LibraryError, match="at least 3"):
        library.add("fox", _cands("others", slice(0, 2)))
    assert "fox" not in library.counts()
