"""A full disk: frames are answered (door shut, 503) and /readyz says why; uploads get 507 with a
reason; once space is back, frames are decided again. The server's home is a real 16 MB tmpfs."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.conftest import DATASETS, need_datasets
from tests.test_service import ADMIN, _kennel

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "home"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs (needs root, as on CI): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path) -> None:
    # Unbuffered: a buffered file would raise ENOSPC again when closed, with its last block unwritten.
    with open(path, "wb", buffering=0) as fh:
        block = b"\0" * 65536
        try:
            while fh.write(block):
                pass
        except OSError:
            pass


def test_a_full_disk_keeps_doors_shut_says_why_and_recovers(small_disk, server_env, start_server, tmp_path):
    need_datasets()
    env = {**server_env, "KENNELGATE_HOME": str(small_disk), "KENNELGATE_THUMBNAILS": "none"}
    root = tmp_path / "photos"
    for species in ("cat", "dog"):
        (root / species).mkdir(parents=True)
        for f in sorted((DATASETS / "catsdogs" / species).iterdir())[:8]:
            (root / species / f.name).write_bytes(f.read_bytes())
    subprocess.run([sys.executable, "-m", "kennelgate.cli", "gallery", "build", str(root)], env=env, check=True, capture_output=True)
    srv = start_server(env)
    frame = sorted((DATASETS / "catsdogs" / "dog").iterdir())[100].read_bytes()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, token = _kennel(c, "full", ["dog"])
        post = lambda: c.post(f"/v1/kennels/{kid}/frames", content=frame, headers={**token, "Content-Type": "image/jpeg"})  # noqa: E731
        first = post()
        assert first.status_code == 200 and c.get("/readyz").status_code == 200, first.text
        _fill(small_disk / "filler")
        answers = [post() for _ in range(5)]
        assert all(r.status_code == 503 and r.json()["decision"] == "closed" for r in answers), [r.text for r in answers]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "disk full" in ready.json()["detail"], ready.text
        up = c.post("/v1/species/fox/photos", headers=ADMIN,
                    files=[("files", (f.name, f.read_bytes())) for f in sorted((DATASETS / "raccoon").iterdir())[:4]])
        assert up.status_code == 507 and "disk is full" in up.json()["detail"], up.text
        (small_disk / "filler").unlink()
        assert post().status_code == 200 and c.get("/readyz").status_code == 200
