"""The field loop's rebuild: labelled kennel frames become field photos; the rebuild composes the
gallery and promotes it only when held-out photos say it is not worse (deliberately wrong labels
must not get in)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image

from app.db import migrate
from app.db.session import Database
from app.library import FieldFrame, LibraryPhoto, PhotoLibrary
from app.rebuild import compose, rebuild
from app.uploads import Candidate
from kennelgate.camera_look import night_camera
from kennelgate.engine import Engine
from tests.conftest import DATASETS, need_datasets

FRAMES = 4


@pytest.fixture
def library(settings, default_model):
    need_datasets()
    settings.home.mkdir(parents=True)
    settings.field_holdout = 0.5
    migrate.upgrade(settings.db_url)
    db = Database(settings.db_url)
    yield PhotoLibrary(settings.photos_dir, db, Engine(settings))
    db.dispose()


def _photos(species: str, sl: slice):
    return sorted((DATASETS / "catsdogs" / species).iterdir())[sl]


def _visits(species: str, sl: slice, seed0: int) -> list[FieldFrame]:
    """Each photo as a visit of FRAMES frames through a night camera the gallery never saw."""
    now = datetime.now(timezone.utc)
    out = []
    for i, p in enumerate(_photos(species, sl)):
        image = Image.open(p)
        out += [FieldFrame(f"{species}{seed0 + i:05d}f{j}".ljust(32, "0"), 1, now, night_camera(image, seed0 + i, j))
                for j in range(FRAMES)]
    return out


@pytest.mark.integration
def test_right_labels_are_taken_in_and_wrong_ones_are_not(library):
    library.add("cat", [Candidate(p.name, p.read_bytes()) for p in _photos("cat", slice(0, 40))])
    library.add("dog", [Candidate(p.name, p.read_bytes()) for p in _photos("dog", slice(0, 40))])
    first = library.engine.store.current_version()

    # Field photos are stored, not indexed: only a rebuild takes them in.
    assert library.add_field("cat", _visits("cat", slice(40, 52), 100)) == 12 * FRAMES
    assert library.add_field("dog", _visits("dog", slice(40, 52), 100)) == 12 * FRAMES
    assert library.engine.store.current_version() == first
    good = rebuild(library)
    assert good.promoted and good.version != first, good.why
    assert good.changes["cat"]["field"] == 12 * FRAMES and good.changes["cat"]["before"] == 40
    assert "no trusted held-out field frames yet" in good.why, "a first batch is judged by the uploaded photos"

    # A careless batch: cats labelled dog and dogs labelled cat. The scenes held out from the first
    # batch (trusted now) and the uploaded photos judge it worse: the serving version stays.
    library.add_field("dog", _visits("cat", slice(52, 72), 200))
    library.add_field("cat", _visits("dog", slice(52, 72), 200))
    bad = rebuild(library)
    assert not bad.promoted and bad.version == good.version, bad.why
    assert library.engine.store.current_version() == good.version
    j = bad.field_judgement
    assert j.frames > 0 and j.cost("candidate", 10) > j.cost("serving", 10), bad.why
    assert "keeps serving" in bad.why

    # Relabelling a frame moves its field photo to the right species.
    moved = _visits("cat", slice(52, 53), 200)
    library.add_field("cat", moved)
    kinds = {(r.species, r.frame_id) for r in library.library_photos() if r.frame_id == moved[0].frame_id}
    assert kinds == {("cat", moved[0].frame_id)}


def test_compose_takes_recent_field_photos_first_then_a_replay_sample():
    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    rows = [LibraryPhoto(i, "cat", None, None, "upload", None, None) for i in range(10)]
    rows += [LibraryPhoto(100 + d, "cat", None, None, "field", now - timedelta(days=d), f"f{d}") for d in range(0, 200, 20)]
    chosen = compose(rows, excluded={0}, cap=12, field_days=90, now=now)["cat"]
    recent = [r.id for r in chosen if r.source == "field" and (now - r.taken_at).days <= 90]
    assert recent == [100, 120, 140, 160, 180], "every recent field photo, newest first"
    assert len(chosen) == 12 and 0 not in {r.id for r in chosen}
    again = compose(rows, excluded={0}, cap=12, field_days=90, now=now)["cat"]
    assert [r.id for r in again] == [r.id for r in chosen], "the replay sample is reproducible"
    assert len(compose(rows, set(), cap=1000, field_days=90, now=now)["cat"]) == 20, "under the cap: everything"
