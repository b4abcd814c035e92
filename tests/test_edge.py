"""Out-of-range and malformed input at the edge: a 4xx with a reason on SQLite and PostgreSQL,
never a 500; then a schema-driven fuzz run (schemathesis) against the real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.conftest import DATASETS, need_datasets
from tests.test_service import ADMIN, _kennel

pytestmark = pytest.mark.integration
HUGE = "99999999999999999999"


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, server_env, start_server):
    env = dict(server_env)
    if request.param == "postgresql":
        env["KENNELGATE_DATABASE_URL"] = request.getfixturevalue("pg_url")
    return start_server(env)


def test_out_of_range_and_malformed_input_is_a_4xx(server):
    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as c:
        kid, token = _kennel(c, "edge", ["dog"])
        cases = [
            ("GET", f"/v1/kennels/{HUGE}", {}),
            ("GET", f"/v1/kennels/{2**31}", {}),
            ("DELETE", f"/v1/tokens/{2**40}", {}),
            ("GET", "/v1/decisions", {"params": {"offset": 2**63}}),
            ("GET", "/v1/decisions", {"params": {"limit": -1}}),
            ("GET", "/v1/decisions", {"params": {"kennel_id": HUGE}}),
            ("GET", "/v1/decisions", {"params": {"species": "do\x00g"}}),
            ("GET", "/v1/alerts", {"params": {"limit": 10**9}}),
            ("POST", "/v1/kennels", {"json": {"name": "a\x00b", "admits": ["dog"]}}),
            ("PATCH", f"/v1/kennels/{kid}", {"json": {"thresholds": {"dog": -5}}}),
            ("PATCH", "/v1/species/dog", {"json": {"threshold": 7}}),
            ("POST", "/v1/species/dog/photos", {"files": [("files", ("a.jpg", b"x"))], "data": {"breed": "b" * 101}}),
            ("DELETE", f"/v1/species/dog/photos/{HUGE}", {}),
            ("GET", f"/v1/kennels/{kid}/health", {"params": {"alerts": -3}}),
        ]
        for method, url, kw in cases:
            r = c.request(method, url, **kw)
            assert 400 <= r.status_code < 500, (method, url, kw, r.status_code, r.text)
            assert r.json().get("detail"), (url, r.text)
        r = c.post(f"/v1/kennels/{HUGE}/frames", content=b"\xff\xd8", headers={**token, "Content-Type": "image/jpeg"})
        assert r.status_code == 422


def test_a_new_kennel_never_inherits_a_deleted_ones_decisions(server_env, start_server):
    srv = start_server(server_env)
    with httpx.Client(base_url=srv.url, timeout=30, headers=ADMIN) as c:
        first, _ = _kennel(c, "first", ["dog"])
        second, token = _kennel(c, "second", ["dog"])
        r = c.post(f"/v1/kennels/{second}/frames", content=b"not a jpeg", headers={**token, "Content-Type": "image/jpeg"})
        assert r.status_code in (422, 503) and r.json()["error"]  # logged, door shut
        assert c.delete(f"/v1/kennels/{second}").status_code == 204
        third, _ = _kennel(c, "third", ["dog"])
        assert third > second > first
        assert c.get("/v1/decisions", params={"kennel_id": third}).json() == []


def test_schema_fuzz_finds_no_server_errors(server_env, start_server, tmp_path):
    """At least 1000 generated requests over every operation of the OpenAPI schema."""
    need_datasets()
    if shutil.which("schemathesis") is None and not (sys.prefix and shutil.which("schemathesis", path=f"{sys.prefix}/bin")):
        pytest.fail("schemathesis expected (the test extra installs it)")
    root = tmp_path / "photos"
    for species in ("cat", "dog"):
        (root / species).mkdir(parents=True)
        for f in sorted((DATASETS / "catsdogs" / species).iterdir())[:6]:
            (root / species / f.name).write_bytes(f.read_bytes())
    subprocess.run([sys.executable, "-m", "kennelgate.cli", "gallery", "build", str(root)], env=server_env, check=True,
                   capture_output=True)
    srv = start_server(server_env)  # with an index: answers are decisions, not "no index yet" (503)
    exe = shutil.which("schemathesis", path=f"{sys.prefix}/bin") or "schemathesis"
    r = subprocess.run(
        [exe, "run", f"{srv.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "40",
         "--header", "Authorization: Bearer test-admin-token", "--exclude-path-regex", "rebuild", "--exclude-path", "/readyz",
         "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    tail = r.stdout[-4000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    generated = int(re.search(r"(\d+) generated", r.stdout).group(1))
    assert generated >= 1000, tail
