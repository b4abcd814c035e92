"""Admitting the right animal, with the real default model on real photos: the readiness card
sees through a burst, and the visit evaluation runs frames through the service's path."""

from __future__ import annotations

import numpy as np
import pytest

from index.folders import OTHER, scan_species
from index.gallery import SpeciesPhotos
from index.readiness import readiness
from kennelgate.corruptions import to_work_size
from kennelgate.door import WindowPolicy
from kennelgate.motion import MotionGate
from kennelgate.visits import live_frame, run_visits
from tests.conftest import DATASETS, need_datasets

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(settings):
    need_datasets()
    from kennelgate.engine import Engine

    e = Engine(settings)
    photos = scan_species(DATASETS / "catsdogs" / "cat", "cat")[:80] + scan_species(DATASETS / "catsdogs" / "dog", "dog")[:80]
    kept, vectors, _ = e.embed_photos(photos)
    e.replace_gallery(e.gallery_from(kept, vectors))
    return e


def test_readiness_card_sees_a_burst_as_few_scenes(engine):
    """A species enrolled from bursts (12 live frames of each of 5 raccoon photos) has 60 photos
    but 5 scenes: the card says so and calls it not ready; cats with 80 real photos are ready."""
    rng = np.random.default_rng(0)
    sources = sorted((DATASETS / "raccoon").iterdir())[:5]
    frames = [live_frame(to_work_size(engine.encoder.load(f)), rng, (426, 320)) for f in sources for _ in range(12)]
    vectors = engine.encoder.embed([engine.encoder.load(f) for f in frames]).vectors
    engine.extend("raccoon", SpeciesPhotos(vectors, [f"burst{i}" for i in range(60)], [None] * 60))
    snap = engine.snapshot()
    cal = engine.decider.calibration
    burst = readiness(snap.gallery, cal, "raccoon")
    assert burst.photos == 60 and burst.scenes <= 8 and burst.near_duplicates >= 50
    assert not burst.ready and any("near-duplicates" in a for a in burst.advice)
    cat = readiness(snap.gallery, cal, "cat")
    assert cat.scenes >= 75 and cat.predicted_accept >= 0.85 and cat.confused_with in (None, "dog")  # Lite1: none
    assert any("no photos are filed under 'other'" in a for a in cat.advice)
    # Left out one photo at a time instead, each frame finds its own twins: a far higher
    # threshold, which new scenes of raccoons would mostly fail.
    from index.calibration import calibrate

    naive = calibrate(snap.gallery, cal.k, cal.target_accept, cal.target_far, twin_cosine=1.01, min_margin=cal.min_margin)
    assert naive.methods["knn"]["raccoon"].threshold > cal.methods["knn"]["raccoon"].threshold + 0.05


def test_visits_run_through_the_service_path(engine):
    cats = scan_species(DATASETS / "catsdogs" / "cat", "cat")[900:915]
    dogs = scan_species(DATASETS / "catsdogs" / "dog", "dog")[900:915]
    unknown = scan_species(DATASETS / "others", OTHER)[:15]
    photos = cats + dogs + unknown
    images = [to_work_size(engine.encoder.load(p.path)) for p in photos]
    s = engine.settings
    results, summary = run_visits(
        engine.pipeline(), images, [p.species for p in photos], [str(p.path) for p in photos], {"cat", "dog"},
        WindowPolicy(3, 5, 2.0), lambda: MotionGate(s.motion_threshold, s.motion_max_skip), frames=8, health=s.health,
    )
    assert summary.known_visits == 30 and summary.unknown_visits == 15 and summary.frames_per_visit == 8
    admitted = summary.admitted["8 frames (0.4 s)"]
    assert admitted >= 0.8
    assert summary.wrong_open_known == 0.0
    assert summary.wrong_open_unknown <= 1 / 15
    # A door opens at the earliest on the K-th frame, and only for a visit with K accepted frames.
    opened = [v for v in results if v.opened is not None]
    assert opened and all(v.opened_at >= 2 and v.frames_accepted_right + (v.truth == OTHER) * 8 >= 1 for v in opened)


def test_raccoons_filed_under_other_keep_the_other_raccoons_out(engine):
    """Half the raccoons filed under 'other': the other half (never seen) stops getting in, and
    the contrast score keeps more cats and dogs than plain kNN with the same thresholds' rules."""
    from kennelgate.deciders import decider_from

    raccoons = scan_species(DATASETS / "raccoon", "raccoon")
    _, vecs, _ = engine.embed_photos(raccoons)
    filed, tested = vecs[::2], vecs[1::2]
    known = scan_species(DATASETS / "catsdogs" / "cat", "cat")[900:950] + scan_species(DATASETS / "catsdogs" / "dog", "dog")[900:950]
    _, kvecs, _ = engine.embed_photos(known)

    def rates(method: str) -> tuple[float, float]:
        d = decider_from(engine.settings.model_copy(update={"method": method}), engine.snapshot().gallery)
        racc = np.mean([x.accepted for x in d.decide(tested)])
        right = np.mean([x.accepted and x.species == p.species for x, p in zip(d.decide(kvecs), known)])
        return float(racc), float(right)

    before, _ = rates("contrast")
    engine.extend(OTHER, SpeciesPhotos(filed, [f"r{i}" for i in range(len(filed))], [None] * len(filed)))
    after, right = rates("contrast")
    _, right_knn = rates("knn")
    assert before >= 0.03 and after <= 0.01
    assert right >= 0.75 and right > right_knn
    card = readiness(engine.snapshot().gallery, engine.decider.calibration, "cat")
    assert not any("no photos are filed under 'other'" in a for a in card.advice)
