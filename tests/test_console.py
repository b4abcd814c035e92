"""The staff console in a real browser: Debian's chromium driven by Playwright (no download)."""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATASETS, need_datasets

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer test-admin-token"}
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium expected at {CHROMIUM} (.ci/run installs it: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _photos(sub: str, n: int) -> list[Path]:
    return sorted((DATASETS / sub).iterdir())[:n]


def _sign_in(page, url: str, token: str) -> None:
    page.goto(url + "/console/")
    assert page.url.endswith("/console/login"), "an anonymous visitor is sent to sign in"
    page.fill("#token", token)
    page.click("#sign-in")


def test_staff_console_end_to_end(server_env, start_server, browser, tmp_path):
    need_datasets()
    # The frame deadline (800 ms, tests/test_overload.py) is not what this test is about: with a
    # browser on the same two cores, the first frame after an upload may miss it on a slow runner.
    server = start_server({**server_env, "KENNELGATE_FRAME_DEADLINE_MS": "10000"})
    c = httpx.Client(base_url=server.url, timeout=120)
    page = browser.new_page()
    page.set_default_timeout(60_000)

    # A device token never signs in; a wrong token is told so.
    kid = c.post("/v1/kennels", json={"name": "cats", "admits": ["cat"]}, headers=ADMIN).json()["id"]
    device = c.post(f"/v1/kennels/{kid}/tokens", headers=ADMIN).json()["token"]
    _sign_in(page, server.url, device)
    assert "Device tokens cannot sign in" in page.inner_text("#login-error")
    page.fill("#token", "kga_not-a-token")
    page.click("#sign-in")
    assert "not valid" in page.inner_text("#login-error")

    # Admin signs in and uploads a zip of cats and loose dog photos: per-file results, readiness card.
    page.fill("#token", "test-admin-token")
    page.click("#sign-in")
    page.wait_for_selector("text=Kennels, live")
    page.click("text=Species")
    zpath = tmp_path / "cats.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in _photos("catsdogs/cat", 40):
            zf.write(f, f"cats/{f.name}")
        zf.writestr("cats/notes.txt", b"not a photo")
    page.fill("#upload-species", "cat")
    page.set_input_files("#upload-files", str(zpath))
    page.wait_for_selector("#upload-summary")
    assert page.inner_text("#upload-summary").startswith("40 new photos of cat added")
    assert "notes.txt" in page.inner_text("#upload-files-table")
    assert page.is_visible("#readiness[data-species=cat]")
    dogs = tmp_path / "dogs"
    dogs.mkdir()
    for f in _photos("catsdogs/dog", 40):
        shutil.copy(f, dogs / f.name)
    (dogs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    page.fill("#upload-species", "dog")
    page.set_input_files("#upload-files", sorted(str(p) for p in dogs.iterdir()))
    page.wait_for_selector("#upload-summary >> text=of dog")
    table = page.inner_text("#upload-files-table")
    assert "broken.jpg\trejected" in table and table.count("\tadded") == 40

    # Frames: raccoons are kept out; a staff member relabels ten of them with the keyboard and in bulk.
    for f in _photos("raccoon", 14):
        r = c.post(f"/v1/kennels/{kid}/frames", content=f.read_bytes(),
                   headers={"Authorization": f"Bearer {device}", "Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
    rejected = [d for d in c.get("/v1/decisions", params={"kennel_id": kid}, headers=ADMIN).json()
                if not d["accepted"] and not d["error"] and d["health"] == "ok"]
    assert len(rejected) >= 10, "most raccoons are kept out"
    page.goto(server.url + f"/console/review?kennel={kid}&outcome=rejected")
    rows = page.locator("#review tbody tr[data-frame]")
    assert rows.count() == len(rejected)
    assert page.locator("#review img.thumb").count() == len(rejected), "thumbnails shown"
    choices = page.locator(".bulk-label").evaluate_all("bs => bs.map(b => b.dataset.species)")
    assert choices == ["cat", "dog", "other"]
    other_key = str(choices.index("other") + 1)
    rows.nth(0).focus()
    page.keyboard.press(other_key)  # the current row
    page.wait_for_selector("#flash >> text=1 frame labelled other")
    for i in range(1, 10):
        rows.nth(i).locator(".pick").check()
    page.locator(".bulk-label[data-species=other]").click()
    page.wait_for_selector("#flash >> text=9 frames labelled other")
    labelled = c.get("/v1/decisions", params={"kennel_id": kid, "label": "other"}, headers=ADMIN).json()
    assert len(labelled) == 10 and all(d["labelled_by"] == "bootstrap admin token" for d in labelled)

    # Override: lock the door; it is in force for the next frame, in the door history and in the audit.
    page.goto(server.url + f"/console/kennels/{kid}")
    assert "people in view are logged, not blocking" in page.inner_text("#head-policy")
    page.select_option("#override-action", "lock")
    page.fill("#override-minutes", "5")
    page.fill("#override-reason", "vet visit")
    page.click("#override-go")
    page.wait_for_selector("#history >> text=override lock — vet visit")
    assert "override: lock" in page.inner_text("h1")
    cat = _photos("catsdogs/cat", 300)[-1]
    r = c.post(f"/v1/kennels/{kid}/frames", content=cat.read_bytes(),
               headers={"Authorization": f"Bearer {device}", "Content-Type": "image/jpeg"}).json()
    assert r["decision"] == "closed" and r["override"] == "lock" and "locked by staff" in r["reason"]
    page.click("text=Audit")
    audit = page.inner_text("#audit")
    assert "override" in audit and "vet visit" in audit and audit.count("\tlabel\t") == 10 and "upload" in audit

    # Staff: may review and override, may not manage tokens (neither the page nor the API).
    staff = c.post("/v1/tokens/staff", json={"label": "Alex"}, headers=ADMIN).json()["token"]
    page.click("text=Sign out")
    _sign_in(page, server.url, staff)
    page.wait_for_selector("text=Kennels, live")
    kept = page.inner_text("#kept-frames")
    assert "Frames kept for learning (teachable)" in kept and "MB budget" in kept and "12 a minute" in kept, kept
    assert "staff" in page.inner_text("#who")
    assert page.locator("header >> text=Tokens").count() == 0
    page.goto(server.url + "/console/tokens")
    assert "Staff cannot manage tokens" in page.inner_text("#page-error")
    status = page.evaluate("""async () => (await fetch('/v1/tokens/admin', {method: 'POST',
        headers: {'X-KennelGate-Console': '1', 'Content-Type': 'application/json'}, body: '{}'})).status""")
    assert status == 403
    page.goto(server.url + f"/console/kennels/{kid}")
    page.select_option("#override-action", "release")
    page.click("#override-go")
    page.wait_for_selector("#history >> text=override release")
    assert "override:" not in page.inner_text("h1")
    # A change signed in by the cookie but without the console's header (another site's form) is refused.
    status = page.evaluate(f"""async () => (await fetch('/v1/kennels/{kid}/override', {{method: 'POST',
        headers: {{'Content-Type': 'application/json'}}, body: '{{"action": "open_once"}}'}})).status""")
    assert status == 403


def test_overrides_labels_and_roles_over_rest(server_env, start_server):
    need_datasets()
    server = start_server(server_env)
    c = httpx.Client(base_url=server.url, timeout=120)
    cats = _photos("catsdogs/cat", 60)
    r = c.post("/v1/species/cat/photos", files=[("files", (f.name, f.read_bytes())) for f in cats[:40]], headers=ADMIN)
    assert r.status_code == 200, r.text
    kid = c.post("/v1/kennels", json={"name": "k", "admits": ["cat"]}, headers=ADMIN).json()["id"]
    device = {"Authorization": "Bearer " + c.post(f"/v1/kennels/{kid}/tokens", headers=ADMIN).json()["token"]}
    staff = {"Authorization": "Bearer " + c.post("/v1/tokens/staff", headers=ADMIN).json()["token"]}

    def frame(photo: Path) -> dict:
        r = c.post(f"/v1/kennels/{kid}/frames", content=photo.read_bytes(), headers={**device, "Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        return r.json()

    # Staff: no kennels, no tokens; devices: no overrides, no labels.
    assert c.post("/v1/kennels", json={"name": "x", "admits": []}, headers=staff).status_code == 403
    assert c.post("/v1/tokens/admin", headers=staff).status_code == 403
    assert c.post(f"/v1/kennels/{kid}/override", json={"action": "open_once"}, headers=device).status_code == 403
    raccoon = _photos("raccoon", 1)[0]
    first = frame(raccoon)
    assert first["decision"] == "closed" and first["override"] is None
    assert c.post(f"/v1/decisions/{first['frame_id']}/label", json={"species": "other"}, headers=device).status_code == 403

    # Open once: the next frame (a raccoon!) opens the door because staff said so; the one after does not.
    r = c.post(f"/v1/kennels/{kid}/override", json={"action": "open_once", "reason": "let the vet's raccoon in"}, headers=staff)
    assert r.status_code == 200 and r.json()["action"] == "open_once", r.text
    opened = frame(_photos("raccoon", 2)[1])
    assert opened["decision"] == "open" and opened["override"] == "open_once" and "opened once by staff" in opened["reason"]
    after = frame(_photos("raccoon", 3)[2])
    assert after["decision"] == "closed" and after["override"] is None
    history = c.get(f"/v1/kennels/{kid}/overrides", headers=staff).json()
    assert history[0]["used_by_frame"] == opened["frame_id"] and history[0]["ended_by"] == "used"

    # Hold closed: the right animal is kept out until release; an override expires by itself.
    c.post(f"/v1/kennels/{kid}/override", json={"action": "hold_closed"}, headers=staff)
    held = [frame(p) for p in cats[40:45]]
    assert all(h["decision"] == "closed" and h["override"] == "hold_closed" for h in held)
    assert any(h["species"] == "cat" for h in held), "the frames' own answer is still reported"
    c.post(f"/v1/kennels/{kid}/override", json={"action": "release"}, headers=staff)
    assert frame(cats[46])["override"] is None
    r = c.post(f"/v1/kennels/{kid}/override", json={"action": "lock", "minutes": 0.01}, headers=staff)
    assert r.status_code == 200
    time.sleep(0.8)
    assert frame(cats[47])["override"] is None, "a 0.6 s lock has expired"
    assert c.post(f"/v1/kennels/{kid}/override", json={"action": "lock", "minutes": 100000}, headers=staff).status_code == 422
    assert c.post(f"/v1/kennels/{kid + 99}/override", json={"action": "lock"}, headers=staff).status_code == 404

    # Labels: a known species or other; unknown frames and species are refused with a reason.
    r = c.post(f"/v1/decisions/{first['frame_id']}/label", json={"species": "other"}, headers=staff)
    assert r.status_code == 200 and r.json() == {"frame_id": first["frame_id"], "label": "other", "door": "closed",
                                                 "species": "other", "agreed": True, "field_photo": True}
    r = c.post(f"/v1/decisions/{opened['frame_id']}/label", json={"species": "fox"}, headers=staff)
    assert r.status_code == 422 and "no species 'fox'" in r.json()["detail"]
    r = c.post("/v1/decisions/labels", json={"frame_ids": [opened["frame_id"], "nope"], "species": "other"}, headers=staff)
    assert r.status_code == 404
    assert c.get("/v1/decisions", params={"label": "*"}, headers=staff).json()[0]["frame_id"] == first["frame_id"]
    trail = c.get("/v1/audit", headers=staff).json()
    assert [e["action"] for e in trail].count("override") == 4 and trail[0]["action"] == "label"
    metrics = c.get("/metrics").text
    assert 'kennelgate_overrides_total{action="open_once",kennel="%d"} 1.0' % kid in metrics
    assert 'kennelgate_labels_total{agreed="true"} 1.0' in metrics
