"""The REST service end to end: a real uvicorn server on loopback, the real default model, real photos."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import zipfile

import httpx
import pytest

from tests.conftest import DATASETS, need_datasets

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer test-admin-token"}
FRAMES_PER_ANIMAL = 5  # fills the default window (3 of 5), so the last answer is this animal's alone


def _files(sub: str) -> list:
    return sorted((DATASETS / sub).iterdir())


def _zip_folder(folder_name: str, files, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            zf.write(f, f"{folder_name}/{f.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _kennel(c: httpx.Client, name: str, admits: list[str]) -> tuple[int, dict]:
    r = c.post("/v1/kennels", json={"name": name, "admits": admits}, headers=ADMIN)
    assert r.status_code == 201, r.text
    kid = r.json()["id"]
    r = c.post(f"/v1/kennels/{kid}/tokens", headers=ADMIN)
    assert r.status_code == 201, r.text
    return kid, {"Authorization": f"Bearer {r.json()['token']}"}


def _upload(c: httpx.Client, species: str, parts: list[tuple[str, bytes]]) -> dict:
    r = c.post(f"/v1/species/{species}/photos", files=[("files", (n, d)) for n, d in parts], headers=ADMIN, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def _door(c: httpx.Client, kid: int, token: dict, photo) -> dict:
    data = photo.read_bytes()
    for _ in range(FRAMES_PER_ANIMAL):
        r = c.post(f"/v1/kennels/{kid}/frames", content=data, headers={**token, "Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
    return r.json()


def test_kennels_open_for_their_species_only(server_env, start_server):
    need_datasets()
    cats, dogs, racs = _files("catsdogs/cat"), _files("catsdogs/dog"), _files("raccoon")
    srv = start_server(server_env)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/readyz").status_code == 503  # no species yet: frames cannot be decided
        dog_k, dog_t = _kennel(c, "dog run", ["dog"])
        cat_k, cat_t = _kennel(c, "cattery", ["cat"])
        rac_k, rac_t = _kennel(c, "raccoon pen", ["raccoon"])

        # Cats as separate files (two broken ones among them), dogs as a zipped folder with junk.
        bad = DATASETS / "badfiles"
        cat_parts = [(f.name, f.read_bytes()) for f in cats[:300]]
        cat_parts += [(p, (bad / p).read_bytes()) for p in ("made_text_not_an_image.jpg", "african_elephants_truncated_file.jpg")]
        up = _upload(c, "cat", cat_parts)
        assert up["added"] == 300 and up["photos"] == 300
        assert {r["file"] for r in up["rejected"]} == {"made_text_not_an_image.jpg", "african_elephants_truncated_file.jpg"}
        assert all(r["reason"] for r in up["rejected"])
        dog_zip = _zip_folder("dog", dogs[:300], {"../../escape.jpg": dogs[0].read_bytes(), "dog/notes.txt": b"hi"})
        up = _upload(c, "dog", [("dogs.zip", dog_zip)])
        assert up["added"] == 300
        reasons = {r["file"]: r["reason"] for r in up["rejected"]}
        assert "traversal" in reasons["dogs.zip:../../escape.jpg"] and "not an image" in reasons["dogs.zip:dog/notes.txt"]
        again = _upload(c, "dog", [(dogs[0].name, dogs[0].read_bytes())])  # the same photo twice
        assert again["added"] == 0 and "duplicate" in again["rejected"][0]["reason"]
        # Negatives filed under 'other' (half of the other animals, all objects) tighten the thresholds;
        # the other half of the animals is held out and must open nothing.
        animals = _files("others")
        negatives = animals[::2] + _files("others_objects")
        assert _upload(c, "other", [("other.zip", _zip_folder("other", negatives))])["added"] == len(negatives)
        assert c.get("/readyz").status_code == 200

        held_dogs, held_cats = dogs[900:908], cats[900:908]
        others = animals[1::2]
        for d in held_dogs:
            assert _door(c, cat_k, cat_t, d)["decision"] == "closed"
        for cat in held_cats:
            assert _door(c, dog_k, dog_t, cat)["decision"] == "closed"
        dog_opens = [_door(c, dog_k, dog_t, d) for d in held_dogs]
        cat_opens = [_door(c, cat_k, cat_t, cat) for cat in held_cats]
        assert sum(r["decision"] == "open" for r in dog_opens) >= 7, dog_opens
        assert sum(r["decision"] == "open" for r in cat_opens) >= 7, cat_opens
        assert all(r["species"] == "dog" for r in dog_opens if r["decision"] == "open")
        wrong_opens = [
            (o.name, kid, res["species"], res["score"])
            for o in others
            for kid, tok in ((dog_k, dog_t), (cat_k, cat_t))
            if (res := _door(c, kid, tok, o))["decision"] == "open"
        ]
        print(f"held-out dogs opening the dog kennel: {sum(r['decision'] == 'open' for r in dog_opens)}/{len(held_dogs)}, "
              f"cats the cattery: {sum(r['decision'] == 'open' for r in cat_opens)}/{len(held_cats)}; "
              f"other animals that opened a door: {len(wrong_opens)} of {len(others)}: {wrong_opens}")
        # Per-photo open-set rejection is ~97-98% (docs/results.md): a few look-alikes (an Angora
        # rabbit as a cat) still pass. The bound keeps that rate from regressing.
        assert len(wrong_opens) <= 0.05 * len(others), wrong_opens

        # A new species while serving: a raccoon kennel stays shut until raccoons are uploaded.
        assert _door(c, rac_k, rac_t, racs[150])["decision"] == "closed"
        up = _upload(c, "raccoon", [("raccoon.zip", _zip_folder("raccoon", racs[:100]))])
        assert up["added"] == 100
        rac_results = [_door(c, rac_k, rac_t, r) for r in racs[150:156]]
        assert sum(r["decision"] == "open" for r in rac_results) >= 5, rac_results
        assert all(_door(c, dog_k, dog_t, r)["decision"] == "closed" for r in racs[150:153])

        # Bad frames fail closed with a reason; they never raise.
        r = c.post(f"/v1/kennels/{dog_k}/frames", content=b"not an image", headers=dog_t)
        assert r.status_code == 422 and r.json()["decision"] == "closed" and "bad frame" in r.json()["reason"]
        assert r.json()["error"] == "bad_frame"
        r = c.post(f"/v1/kennels/{dog_k}/frames", files={"file": ("f.jpg", held_dogs[0].read_bytes())}, headers=dog_t)
        assert r.status_code == 200 and r.json()["species"] == "dog"  # multipart works too

        # The decision log has every frame, filterable; thumbnails are kept.
        posted_dog = FRAMES_PER_ANIMAL * (len(held_cats) + len(held_dogs) + len(others) + 3) + 2
        log = c.get("/v1/decisions", params={"kennel_id": dog_k, "limit": 10000}, headers=ADMIN).json()
        assert len(log) == posted_dog
        assert {"frame_id", "species", "score", "door", "reason", "index_version", "model"} <= set(log[0])
        opened = c.get("/v1/decisions", params={"kennel_id": dog_k, "door": "open", "limit": 10000}, headers=ADMIN).json()
        assert opened and all(d["door"] == "open" and d["species"] == "dog" for d in opened)
        thumb = c.get(f"/v1/decisions/{log[0]['frame_id']}/thumbnail", headers=ADMIN)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"

        metrics = c.get("/metrics").text
        assert 'kennelgate_decisions_total{door="open",species="dog"}' in metrics
        assert "kennelgate_frame_latency_seconds_bucket" in metrics and f"kennelgate_index_photos {700.0 + len(negatives)}" in metrics
        species = {s["name"]: s for s in c.get("/v1/species", headers=ADMIN).json()}
        assert species["raccoon"]["indexed"] == 100 and species["cat"]["calibrated_threshold"] is not None


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_auth_and_admin_api(db, server_env, start_server, request):
    need_datasets()
    env = dict(server_env)
    if db == "postgresql":
        env["KENNELGATE_DATABASE_URL"] = request.getfixturevalue("pg_url")
    srv = start_server(env)
    cats, dogs = _files("catsdogs/cat"), _files("catsdogs/dog")
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/v1/kennels").status_code == 401
        assert c.get("/v1/kennels", headers={"Authorization": "Bearer nope"}).status_code == 401
        dog_k, dog_t = _kennel(c, "dogs", ["dog"])
        cat_k, cat_t = _kennel(c, "cats", ["cat"])
        assert c.post("/v1/kennels", json={"name": "x", "admits": ["other"]}, headers=ADMIN).status_code == 422
        assert c.post("/v1/kennels", json={"name": "dogs", "admits": ["dog"]}, headers=ADMIN).status_code == 409
        # A device token posts frames to its own kennel only and reaches no admin endpoint.
        assert c.get("/v1/kennels", headers=dog_t).status_code == 403
        assert c.post("/v1/kennels", json={"name": "y", "admits": ["dog"]}, headers=dog_t).status_code == 403
        assert c.post(f"/v1/kennels/{dog_k}/tokens", headers=dog_t).status_code == 403
        assert c.post("/v1/species/dog/photos", files=[("files", ("a.jpg", b"x"))], headers=dog_t).status_code == 403
        assert c.get("/v1/decisions", headers=dog_t).status_code == 403
        frame = dogs[900].read_bytes()
        assert c.post(f"/v1/kennels/{cat_k}/frames", content=frame, headers=dog_t).status_code == 403
        r = c.post(f"/v1/kennels/{dog_k}/frames", content=frame, headers=dog_t)
        assert r.status_code == 503 and r.json()["decision"] == "closed" and r.json()["error"] == "no_index"  # fail closed
        assert "no usable index" in r.json()["reason"]

        # A new species needs at least 3 usable photos; nothing is stored otherwise.
        r = c.post("/v1/species/cat/photos", files=[("files", (f.name, f.read_bytes())) for f in cats[:2]], headers=ADMIN)
        assert r.status_code == 422 and "at least 3" in r.json()["detail"]["message"]
        _upload(c, "cat", [(f.name, f.read_bytes()) for f in cats[:30]])
        _upload(c, "dog", [(f.name, f.read_bytes()) for f in dogs[:30]])
        assert _door(c, dog_k, dog_t, dogs[900])["decision"] == "open"
        # Manual thresholds: a kennel override above every score keeps the door shut.
        r = c.patch(f"/v1/kennels/{dog_k}", json={"thresholds": {"dog": 0.999}}, headers=ADMIN)
        assert r.status_code == 200
        res = _door(c, dog_k, dog_t, dogs[900])
        assert res["decision"] == "closed" and "below threshold 0.999" in res["reason"]
        c.patch(f"/v1/kennels/{dog_k}", json={"thresholds": {}}, headers=ADMIN)
        # Remove a photo, then the species; kennels that admit it stay shut.
        photos = c.get("/v1/species/dog/photos", headers=ADMIN).json()
        assert len(photos) == 30
        assert c.delete(f"/v1/species/dog/photos/{photos[0]['id']}", headers=ADMIN).status_code == 204
        assert c.get("/v1/index", headers=ADMIN).json()["species"]["dog"] == 29
        assert c.delete("/v1/species/dog", headers=ADMIN).status_code == 204
        assert _door(c, dog_k, dog_t, dogs[900])["decision"] == "closed"

        # Revocation takes effect at once.
        tokens = c.get(f"/v1/kennels/{dog_k}/tokens", headers=ADMIN).json()
        assert c.delete(f"/v1/tokens/{tokens[0]['id']}", headers=ADMIN).status_code == 204
        assert c.post(f"/v1/kennels/{dog_k}/frames", content=frame, headers=dog_t).status_code == 401
        assert c.get("/openapi.json").json()["paths"]["/v1/kennels/{kennel_id}/frames"]


def test_rebuild_while_serving(server_env, start_server, tmp_path):
    """A nightly rebuild (separate process) runs while frames stream in: no failure, version swaps, all logged."""
    need_datasets()
    cats, dogs = _files("catsdogs/cat"), _files("catsdogs/dog")
    srv = start_server(server_env)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        dog_k, dog_t = _kennel(c, "dogs", ["dog"])
        _upload(c, "cat", [("cats.zip", _zip_folder("cat", cats[:250]))])
        before = _upload(c, "dog", [("dogs.zip", _zip_folder("dog", dogs[:250]))])["index_version"]

    frames = [d.read_bytes() for d in dogs[900:920]]
    results: list = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c2:
            i = 0
            while not stop.is_set():
                try:
                    r = c2.post(f"/v1/kennels/{dog_k}/frames", content=frames[i % len(frames)], headers=dog_t)
                    results.append((r.status_code, r.json() if r.status_code == 200 else r.text))
                except httpx.HTTPError as exc:
                    results.append((0, repr(exc)))
                i += 1

    t = threading.Thread(target=client)
    t.start()
    try:
        rebuild = subprocess.run(
            [sys.executable, "-m", "kennelgate.cli", "index", "rebuild"], env=server_env, capture_output=True, text=True
        )
        during = len(results)
        import time

        time.sleep(1.5)  # the API picks the new version up within its poll interval
    finally:
        stop.set()
        t.join()
    assert rebuild.returncode == 0, rebuild.stderr
    failures = [r for r in results if r[0] != 200 or r[1].get("reason", "").startswith(("internal", "no usable", "decision log"))]
    assert not failures, failures[:3]
    assert during > 20  # frames really were served during the rebuild
    versions = [r[1]["index_version"] for r in results]
    assert versions[0] == before and versions[-1] != before and versions[-1] > before
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        logged = c.get("/v1/decisions", params={"kennel_id": dog_k, "limit": 10000}, headers=ADMIN).json()
        assert {d["frame_id"] for d in logged} == {r[1]["frame_id"] for r in results}
        assert c.get("/v1/index", headers=ADMIN).json()["version"] == versions[-1]
        # The API's own rebuild endpoint works the same way.
        assert c.post("/v1/index/rebuild", headers=ADMIN).status_code == 202
        import time

        for _ in range(300):
            state = c.get("/v1/index/rebuild", headers=ADMIN).json()
            if state["state"] != "running":
                break
            time.sleep(0.2)
        assert state["state"] == "done" and state["version"] > versions[-1], state


def test_cascade_sends_unsure_frames_to_a_big_tier_server(server_env, start_server, tmp_path):
    """A second real server is the big tier. With the margin wide open every classified frame goes
    there; when it is down, an unsure frame keeps the door shut and says why."""
    need_datasets()
    cats = sorted((DATASETS / "catsdogs" / "cat").iterdir())
    dogs = sorted((DATASETS / "catsdogs" / "dog").iterdir())
    big = start_server({**server_env, "KENNELGATE_HOME": str(tmp_path / "big")})
    with httpx.Client(base_url=big.url, timeout=120) as c:
        _upload(c, "cat", [("c.zip", _zip_folder("cat", cats[:60]))])
        _upload(c, "dog", [("d.zip", _zip_folder("dog", dogs[:60]))])
        assert c.post("/v1/classify", content=dogs[900].read_bytes()).status_code == 401
        direct = c.post("/v1/classify", content=dogs[900].read_bytes(), headers=ADMIN)
        assert direct.status_code == 200 and direct.json()["species"] == "dog" and direct.json()["accepted"]
        assert c.post("/v1/classify", content=b"junk", headers=ADMIN).status_code == 422
        assert c.get("/v1/decisions", headers=ADMIN).json() == []  # classify logs nothing
    small = start_server({**server_env, "KENNELGATE_HOME": str(tmp_path / "small"), "KENNELGATE_CASCADE_URL": big.url,
                          "KENNELGATE_CASCADE_TOKEN": "test-admin-token", "KENNELGATE_CASCADE_MARGIN": "10"})
    with httpx.Client(base_url=small.url, timeout=120) as c:
        _upload(c, "cat", [("c.zip", _zip_folder("cat", cats[:60]))])
        _upload(c, "dog", [("d.zip", _zip_folder("dog", dogs[:60]))])
        kid, tok = _kennel(c, "cascade", ["dog"])
        frames = dogs[900:904] + cats[900:901]
        answers = [c.post(f"/v1/kennels/{kid}/frames", content=f.read_bytes(), headers=tok).json() for f in frames]
        assert all(a["tier"] == "remote" and "answered by the big tier" in a["reason"] for a in answers), json.dumps(answers)
        with httpx.Client(base_url=big.url, timeout=60, headers=ADMIN) as b:  # the big tier's own answers
            direct = [b.post("/v1/classify", content=f.read_bytes()).json() for f in frames]
        assert [a["species"] for a in answers] == [d["species"] for d in direct]
        assert [a["score"] for a in answers] == [d["score"] for d in direct]
        assert answers[-1]["species"] == "cat" and answers[-1]["decision"] == "closed"
        big.stop()
        lost = [c.post(f"/v1/kennels/{kid}/frames", content=f.read_bytes(), headers=tok).json() for f in dogs[905:908]]
        assert all(a["tier"] == "local" and a["decision"] == "closed" and "big tier did not answer" in a["reason"] for a in lost)
        assert "kennelgate_frames_cascaded_total 5.0" in c.get("/metrics").text
