#!/usr/bin/env python
"""Load test: N kennels each posting frames at a target rate to the REST API on loopback.

By default it starts its own server (``kennelgate serve``) in a temporary home, indexes cats and
dogs through the admin API, creates the kennels and then runs each load level for --seconds.
Prints frames/s and client-side latency percentiles per level; ``--json`` keeps the numbers.

    python scripts/load.py --kennels 1,2,4 --fps 20 --seconds 15
    python scripts/load.py --url http://127.0.0.1:8000 --admin-token $KENNELGATE_ADMIN_TOKEN
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Optional

import httpx
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
console = Console(width=140)


def _zip(folder: str, files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            zf.write(f, f"{folder}/{f.name}")
    return buf.getvalue()


def _start_server(home: Path, port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "KENNELGATE_HOME": str(home), "KENNELGATE_ADMIN_TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kennelgate.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "wb"),
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start; see {home / 'server.log'}")


def _setup(url: str, admin: dict, n_kennels: int, photos: int) -> list[tuple[int, dict]]:
    with httpx.Client(base_url=url, timeout=600, headers=admin) as c:
        if not c.get("/v1/index").json()["version"]:
            for species in ("cat", "dog"):
                files = sorted((DATASETS / "catsdogs" / species).iterdir())[:photos]
                with console.status(f"uploading {len(files)} {species} photos…"):
                    r = c.post(f"/v1/species/{species}/photos", files=[("files", (f"{species}.zip", _zip(species, files)))])
                r.raise_for_status()
        kennels = []
        stamp = int(time.time())
        for i in range(n_kennels):
            admits = ["dog"] if i % 2 == 0 else ["cat"]
            k = c.post("/v1/kennels", json={"name": f"load-{stamp}-{i}", "admits": admits})
            k.raise_for_status()
            t = c.post(f"/v1/kennels/{k.json()['id']}/tokens")
            t.raise_for_status()
            kennels.append((k.json()["id"], {"Authorization": f"Bearer {t.json()['token']}"}))
        return kennels


async def _kennel_loop(client, kid, headers, frames, fps, until, lat, server_ms, errors) -> None:
    period, i = 1.0 / fps, 0
    next_t = time.perf_counter()
    while True:
        now = time.perf_counter()
        if now >= until:
            return
        if next_t > now:
            await asyncio.sleep(next_t - now)
        next_t += period
        t0 = time.perf_counter()
        try:
            r = await client.post(f"/v1/kennels/{kid}/frames", content=frames[i % len(frames)], headers=headers)
            if r.status_code == 200:
                lat.append(time.perf_counter() - t0)
                server_ms.append(r.json()["latency_ms"])
            else:
                errors.append(r.status_code)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
        i += 1


async def _level(url, kennels, frames, fps, seconds) -> dict:
    lat: list[float] = []
    server_ms: list[float] = []
    errors: list = []
    limits = httpx.Limits(max_connections=len(kennels) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        # Warm-up: one frame per kennel outside the measurement.
        for kid, h in kennels:
            await client.post(f"/v1/kennels/{kid}/frames", content=frames[0], headers=h)
        t0 = time.perf_counter()
        until = t0 + seconds
        await asyncio.gather(*[_kennel_loop(client, kid, h, frames, fps, until, lat, server_ms, errors) for kid, h in kennels])
        elapsed = time.perf_counter() - t0
    ms = np.array(lat) * 1000.0
    return {
        "kennels": len(kennels),
        "target_fps": fps * len(kennels),
        "achieved_fps": round(len(lat) / elapsed, 1),
        "per_kennel_fps": round(len(lat) / elapsed / len(kennels), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "server_p50_ms": round(statistics.median(server_ms), 1) if server_ms else None,
        "frames": len(lat),
        "errors": len(errors),
    }


def main(
    kennels: str = typer.Option("1,2,3,4", help="Comma list of kennel counts to run, one level each."),
    fps: float = typer.Option(20.0, help="Frames per second each kennel posts."),
    seconds: float = typer.Option(15.0, help="Duration of each level."),
    url: Optional[str] = typer.Option(None, help="Use a running server instead of starting one."),
    admin_token: str = typer.Option("load-admin", envvar="KENNELGATE_ADMIN_TOKEN", help="Admin token for setup."),
    photos: int = typer.Option(300, help="Photos per species to index when the server has no index."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results here."),
) -> None:
    """Frames/s and p50/p99 latency for N kennels posting at --fps each, on loopback."""
    levels = [int(x) for x in kennels.split(",")]
    proc, tmp = None, None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="kennelgate-load-")
        port = 18000 + os.getpid() % 1000
        with console.status("starting kennelgate serve…"):
            proc = _start_server(Path(tmp.name), port, admin_token)
        url = f"http://127.0.0.1:{port}"
    try:
        admin = {"Authorization": f"Bearer {admin_token}"}
        all_kennels = _setup(url, admin, max(levels), photos)
        frames = [f.read_bytes() for f in sorted((DATASETS / "catsdogs" / "dog").iterdir())[-50:]]
        results = []
        for n in levels:
            with console.status(f"{n} kennel(s) × {fps:g} fps for {seconds:g}s…"):
                results.append(asyncio.run(_level(url, all_kennels[:n], frames, fps, seconds)))
        table = Table("kennels", "target fps", "achieved fps", "per kennel", "p50 ms", "p95 ms", "p99 ms", "server p50 ms", "errors",
                      title=f"KennelGate load on loopback ({os.cpu_count()} cores; frames: real 500x375-ish JPEGs)")
        for r in results:
            table.add_row(*(str(r[k]) for k in ("kennels", "target_fps", "achieved_fps", "per_kennel_fps", "p50_ms", "p95_ms", "p99_ms", "server_p50_ms", "errors")))
        console.print(table)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps({"fps_per_kennel": fps, "seconds": seconds, "levels": results}, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    typer.run(main)
