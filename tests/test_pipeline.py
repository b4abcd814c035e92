"""The one frame pipeline: its steps with a fake encoder, and the same answers from every caller
(the service, `classify`, the corruption suite, the visit evaluation) with the real model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from embedder.images import open_image
from index.calibration import calibrate
from index.decision import Decider, Decision
from index.gallery import Gallery, SpeciesPhotos
from kennelgate.health import HealthThresholds
from kennelgate.health_detector import get as packaged_detector
from kennelgate.motion import MotionGate
from kennelgate.pipeline import Camera, FramePipeline, TierError
from tests.conftest import DATASETS, need_datasets

RED, BLUE = (200, 40, 40), (40, 40, 200)


def _fake_embed(images: list[Image.Image]) -> np.ndarray:
    """A stand-in encoder: the frame's mean colour, as a unit vector."""
    v = np.stack([np.asarray(im, np.float32).reshape(-1, 3).mean(0) for im in images]) - 120.0
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _frame(colour, seed: int = 0, size=(160, 120), noise: float = 25.0) -> bytes:
    """A scene of one colour with a fixed texture (the same scene for every seed) and sensor noise."""
    texture = np.asarray(Image.fromarray(np.random.default_rng(99).uniform(0, 80, (6, 8)).astype(np.uint8)).resize(size))
    rng = np.random.default_rng(seed)
    arr = np.array(colour, np.float32) + texture[..., None] - 40 + rng.normal(0, noise, (size[1], size[0], 3))
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def fake():
    rng = np.random.default_rng(1)
    g = Gallery("fake", 3)
    for name, colour in (("redcat", RED), ("bluedog", BLUE)):
        x = np.array(colour, np.float32) - 120.0 + rng.normal(0, 6, (40, 3))
        g.add(name, SpeciesPhotos(x / np.linalg.norm(x, axis=1, keepdims=True), [f"{name}{i}" for i in range(40)], [None] * 40))
    decider = Decider(g, calibrate(g, 5, 0.9, 0.01), version="v1")
    calls = []

    def embed(images):
        calls.append(len(images))
        return _fake_embed(images)

    pipe = FramePipeline(decode=open_image, embed=embed, decider=lambda: decider, detector=packaged_detector)
    return pipe, calls


NO_LEARNED = HealthThresholds(bright=1.0, occlusion=1.0, blur=1.0)  # synthetic frames: rules only


def test_steps_with_a_fake_encoder(fake):
    pipe, calls = fake
    frames = [_frame(RED, 1), _frame(BLUE, 2), b"not an image", _frame((3, 3, 3), 3)]
    red, blue, bad, black = pipe.run(frames, health=NO_LEARNED)
    assert (red.accepted, red.species, blue.species) == (True, "redcat", "bluedog")
    assert calls == [2]  # one encoder run for the two frames that needed it
    assert bad.error == "bad_frame" and bad.decision is None and not bad.accepted and bad.vote is None
    assert black.health.fault in ("dark", "no_signal") and black.decision is None and not black.accepted
    assert red.index_version == "v1" and red.image is not None


def test_a_camera_reuses_an_unchanged_scene_and_catches_a_frozen_feed(fake):
    pipe, calls = fake
    cam = Camera(MotionGate(threshold=2.5, max_skip=40))
    first = pipe.run([_frame(RED, 1, noise=2)], [cam], NO_LEARNED)[0]
    again = pipe.run([_frame(RED, 2, noise=2)], [cam], NO_LEARNED)[0]  # same scene, new sensor noise
    assert again.reused_from == first.frame_id and again.species == "redcat" and calls == [1]
    moved = pipe.run([_frame(BLUE, 3)], [cam], NO_LEARNED)[0]
    assert moved.reused_from is None and moved.species == "bluedog" and calls == [1, 1]
    frozen = HealthThresholds(bright=1.0, occlusion=1.0, blur=1.0, frozen_frames=3)
    still = _frame(BLUE, 4)
    answers = [pipe.run([still], [Camera()], frozen)[0] for _ in range(3)]  # no memory: never frozen
    assert all(a.health.ok for a in answers)
    cam2 = Camera()
    answers = [pipe.run([still], [cam2], frozen)[0] for _ in range(3)]
    assert answers[-1].health.fault == "frozen" and not answers[-1].accepted


def test_the_cascade_asks_the_big_tier_only_when_unsure_and_fails_closed(fake):
    pipe, _ = fake
    asked = []

    def big(data: bytes) -> Decision:
        asked.append(len(data))
        return Decision("bluedog", 0.9, True, top=[("bluedog", 0.9)], best="bluedog", reason="accepted")

    sure = FramePipeline(open_image, _fake_embed, pipe.decider, pipe.detector, big_tier=big, cascade_margin=0.0)
    assert sure.run([_frame(RED, 1)], health=NO_LEARNED)[0].tier == "local" and not asked
    unsure = FramePipeline(open_image, _fake_embed, pipe.decider, pipe.detector, big_tier=big, cascade_margin=10.0)
    r = unsure.run([_frame(RED, 1)], health=NO_LEARNED)[0]
    assert r.tier == "remote" and r.species == "bluedog" and asked

    def down(data: bytes) -> Decision:
        raise TierError("timed out")

    dead = FramePipeline(open_image, _fake_embed, pipe.decider, pipe.detector, big_tier=down, cascade_margin=10.0)
    r = dead.run([_frame(RED, 1)], health=NO_LEARNED)[0]
    assert r.tier == "unanswered" and not r.accepted and "did not answer" in r.reason


@pytest.mark.integration
def test_service_classify_and_evaluations_give_identical_answers(tmp_path, settings, server_env, start_server):
    """The same frames through `kennelgate classify`, the corruption suite's and the visit
    evaluation's runners, and the REST service: the same species, score and health each time."""
    need_datasets()
    import httpx

    from kennelgate.engine import Engine
    from kennelgate.robustness import SuiteRunner

    root = tmp_path / "gallery"
    for s in ("cat", "dog"):
        (root / s).mkdir(parents=True)
        for f in sorted((DATASETS / "catsdogs" / s).iterdir())[:60]:
            (root / s / f.name).symlink_to(f)
    engine = Engine(settings)
    from index.folders import scan_root

    kept, vectors, _ = engine.embed_photos(scan_root(root))
    engine.replace_gallery(engine.gallery_from(kept, vectors))
    frames = sorted((DATASETS / "catsdogs" / "cat").iterdir())[900:906] + sorted((DATASETS / "catsdogs" / "dog").iterdir())[900:906]
    frames += [DATASETS / "raccoon" / "raccoon-150.jpg", DATASETS / "others" / "n02119789_kit_fox.JPEG"]

    def key(species, score, health):
        return species, round(score, 3), health

    cli = [key(r.decision.species if r.decision else "other", r.decision.score if r.decision else 0.0, r.health.fault)
           for r in engine.classify(frames)]
    suite = SuiteRunner(engine, engine.decider, settings.health, k=3)
    faults, decisions = suite._run([engine.encoder.load(f) for f in frames])
    suite.pool.shutdown()
    evaluation = [key(d.species if f == "ok" else "other", d.score if f == "ok" else 0.0, f) for d, f in zip(decisions, faults)]
    visits = [key(r.species, r.decision.score if r.decision else 0.0, r.health.fault)
              for r in engine.pipeline().run([f.read_bytes() for f in frames], [Camera(None) for _ in frames], settings.health)]

    env = {**server_env, "KENNELGATE_HOME": str(settings.home), "KENNELGATE_MOTION_THRESHOLD": "0"}
    srv = start_server(env)
    admin = {"Authorization": "Bearer test-admin-token"}
    service = []
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid = c.post("/v1/kennels", json={"name": "k", "admits": ["cat", "dog"]}, headers=admin).json()["id"]
        token = {"Authorization": f"Bearer {c.post(f'/v1/kennels/{kid}/tokens', headers=admin).json()['token']}"}
        for f in frames:
            a = c.post(f"/v1/kennels/{kid}/frames", content=f.read_bytes(), headers={**token, "Content-Type": "image/jpeg"}).json()
            service.append(key(a["species"], a["score"] if a["health"] == "ok" else 0.0, a["health"]))
        card = c.get("/v1/species/cat/readiness", headers=admin)
        assert card.status_code == 200 and card.json()["scenes"] > 50 and 0.8 <= card.json()["predicted_accept"] <= 1
        assert c.get("/v1/species/unicorn/readiness", headers=admin).status_code == 404
    accepted_cli = [(s if s != "other" else None) for s, _, _ in cli]
    assert sum(a is not None for a in accepted_cli) >= 8  # the frames mostly decide something
    for name, got in (("suite", evaluation), ("visits", visits), ("service", service)):
        assert [g[0] for g in got] == [c[0] for c in cli], f"{name} species differ from classify: {got} {cli}"
        assert np.allclose([g[1] for g in got], [c[1] for c in cli], atol=2e-3), f"{name} scores differ"
        assert [g[2] for g in got] == [c[2] for c in cli], f"{name} health differs"
