#!/usr/bin/env python
"""Load test: N kennels each posting frames at a target rate to the REST API on loopback.

By default it starts its own server (``kennelgate serve``) in a temporary home, indexes cats and
dogs through the admin API, creates the kennels and then runs each load level for --seconds.
Prints frames/s and client-side latency percentiles per level; ``--json`` keeps the numbers.

    python scripts/load.py --kennels 1,2,4 --fps 20 --seconds 15
    python scripts/load.py --url http://127.0.0.1:8000 --admin-token $KENNELGATE_ADMIN_TOKEN
    python scripts/load.py --scene static --kennels 10 --compare-gating   # idle kennels, CPU share
    python scripts/load.py --scene static --kennels 10 --transport ws     # frames over WebSocket streams

``--scene static`` is an empty doorway: each kennel's camera sends the same view with fresh
sensor noise in every frame (a live camera, not a frozen one). The server's CPU share (its
process CPU time over wall time × cores) is reported per level; ``--compare-gating`` runs the
same levels again on a server with motion gating off, in the same command. ``--transport ws``
sends each kennel's frames over one WebSocket stream (``/v1/kennels/{id}/stream``) instead of one
POST per frame; ``both`` runs each level both ways.
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


def _start_server(home: Path, port: int, token: str, extra_env: Optional[dict] = None) -> subprocess.Popen:
    env = {**os.environ, "KENNELGATE_HOME": str(home), "KENNELGATE_ADMIN_TOKEN": token, **(extra_env or {})}
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


async def _paced(fps: float, until: float):
    """Frame numbers on a camera's schedule (``fps``) until ``until`` (perf_counter time)."""
    period, i, next_t = 1.0 / fps, 0, time.perf_counter()
    while True:
        now = time.perf_counter()
        if now >= until:
            return
        if next_t > now:
            await asyncio.sleep(next_t - now)
        next_t += period
        yield i
        i += 1


async def _kennel_loop(client, kid, headers, frames, fps, until, lat, server_ms, errors) -> None:
    async for i in _paced(fps, until):
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


def _cpu_seconds(pid: Optional[int]) -> Optional[float]:
    """User + system CPU time of a process (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def static_scenes(n_kennels: int, frames_each: int = 30, seed: int = 0) -> list[list[bytes]]:
    """Per kennel: one real photo as the empty doorway, each frame with new sensor noise (σ=2)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    views = sorted((DATASETS / "others_objects").iterdir())
    out = []
    for k in range(n_kennels):
        base = np.asarray(Image.open(views[k % len(views)]).convert("RGB"), np.float32)
        frames = []
        for _ in range(frames_each):
            buf = io.BytesIO()
            noisy = np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(buf, "JPEG", quality=90)
            frames.append(buf.getvalue())
        out.append(frames)
    return out


_SKIPPED = "skipped"


async def _kennel_stream(url, kid, headers, frames, fps, until, lat, server_ms, errors) -> None:
    """One camera's WebSocket stream: frames sent on schedule, answers read as they come."""
    import websockets

    ws_url = url.replace("http", "ws", 1) + f"/v1/kennels/{kid}/stream"
    async with websockets.connect(ws_url, additional_headers=headers, compression=None, max_size=None) as ws:
        sent: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            while True:
                t0 = await sent.get()
                if t0 is None:
                    return
                answer = json.loads(await ws.recv())
                if "error" in answer:  # a skipped frame: the server was behind (its stream backlog)
                    errors.append(_SKIPPED if answer.get("skipped") else answer["error"])
                else:
                    lat.append(time.perf_counter() - t0)
                    server_ms.append(answer["latency_ms"])

        reader = asyncio.create_task(read())
        async for i in _paced(fps, until):
            await sent.put(time.perf_counter())
            await ws.send(frames[i % len(frames)])
        await sent.put(None)
        await reader


async def _level(url, kennels, frames, fps, seconds, pid: Optional[int] = None, transport: str = "http") -> dict:
    """``frames``: one list shared by all kennels, or one list per kennel."""
    lat: list[float] = []
    server_ms: list[float] = []
    errors: list = []
    limits = httpx.Limits(max_connections=len(kennels) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        per_kennel = frames if isinstance(frames[0], list) else [frames] * len(kennels)
        # Warm-up: one frame per kennel outside the measurement.
        for (kid, h), fr in zip(kennels, per_kennel):
            await client.post(f"/v1/kennels/{kid}/frames", content=fr[0], headers=h)
        cpu0 = _cpu_seconds(pid)
        t0 = time.perf_counter()
        until = t0 + seconds
        if transport == "ws":
            await asyncio.gather(*[
                _kennel_stream(url, kid, h, fr, fps, until, lat, server_ms, errors) for (kid, h), fr in zip(kennels, per_kennel)
            ])
        else:
            await asyncio.gather(*[
                _kennel_loop(client, kid, h, fr, fps, until, lat, server_ms, errors) for (kid, h), fr in zip(kennels, per_kennel)
            ])
        elapsed = time.perf_counter() - t0
        cpu1 = _cpu_seconds(pid)
    ms = np.array(lat) * 1000.0
    return {
        "transport": transport,
        "kennels": len(kennels),
        "target_fps": fps * len(kennels),
        "achieved_fps": round(len(lat) / elapsed, 1),
        "per_kennel_fps": round(len(lat) / elapsed / len(kennels), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "server_p50_ms": round(statistics.median(server_ms), 1) if server_ms else None,
        "frames": len(lat),
        "errors": len(errors) - errors.count(_SKIPPED),
        "skipped": errors.count(_SKIPPED),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / (elapsed * os.cpu_count()), 1) if cpu0 is not None and cpu1 is not None else None,
    }


def main(
    kennels: str = typer.Option("1,2,3,4", help="Comma list of kennel counts to run, one level each."),
    fps: float = typer.Option(20.0, help="Frames per second each kennel posts."),
    seconds: float = typer.Option(15.0, help="Duration of each level."),
    scene: str = typer.Option("moving", help="moving: a different dog photo each frame; static: empty doorways."),
    compare_gating: bool = typer.Option(False, help="Run the levels again on a server with motion gating off."),
    transport: str = typer.Option("http", help="http: one POST per frame; ws: one WebSocket stream per kennel; both."),
    url: Optional[str] = typer.Option(None, help="Use a running server instead of starting one."),
    server_pid: Optional[int] = typer.Option(None, help="With --url: the server's pid, to report its CPU share."),
    admin_token: str = typer.Option("load-admin", envvar="KENNELGATE_ADMIN_TOKEN", help="Admin token for setup."),
    photos: int = typer.Option(300, help="Photos per species to index when the server has no index."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results here."),
) -> None:
    """Frames/s, p50/p99 latency and server CPU for N kennels posting at --fps each, on loopback."""
    levels = [int(x) for x in kennels.split(",")]
    if scene not in ("moving", "static"):
        raise typer.BadParameter("--scene is moving or static")
    if transport not in ("http", "ws", "both"):
        raise typer.BadParameter("--transport is http, ws or both")
    transports = ["http", "ws"] if transport == "both" else [transport]
    if scene == "static":
        frames = static_scenes(max(levels))
    else:
        frames = [f.read_bytes() for f in sorted((DATASETS / "catsdogs" / "dog").iterdir())[-50:]]
    runs = [("motion gating on", {})]
    if compare_gating:
        runs.append(("motion gating off", {"KENNELGATE_MOTION_THRESHOLD": "0"}))
    results = []
    for label, extra in runs:
        results += [{"server": label, **r} for r in _run_levels(levels, frames, fps, seconds, url, server_pid, admin_token, photos, extra, transports)]
    table = Table("server", "transport", "kennels", "target fps", "achieved fps", "p50 ms", "p99 ms", "server p50 ms", "server CPU", "errors",
                  title=f"KennelGate load on loopback ({os.cpu_count()} cores, scene: {scene})")
    for r in results:
        cpu = f"{r['server_cpu_pct']}%" if r["server_cpu_pct"] is not None else "n/a"
        table.add_row(r["server"], *(str(r[k]) for k in ("transport", "kennels", "target_fps", "achieved_fps", "p50_ms", "p99_ms", "server_p50_ms")), cpu,
                      str(r["errors"]) + (f" (+{r['skipped']} skipped)" if r.get("skipped") else ""))
    console.print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"fps_per_kennel": fps, "seconds": seconds, "scene": scene, "levels": results}, indent=2))


def _run_levels(levels, frames, fps, seconds, url, server_pid, admin_token, photos, extra_env, transports=("http",)) -> list[dict]:
    proc, tmp = None, None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="kennelgate-load-")
        port = 18000 + os.getpid() % 1000
        with console.status("starting kennelgate serve…"):
            proc = _start_server(Path(tmp.name), port, admin_token, extra_env)
        url, server_pid = f"http://127.0.0.1:{port}", proc.pid
    try:
        admin = {"Authorization": f"Bearer {admin_token}"}
        all_kennels = _setup(url, admin, max(levels), photos)
        results = []
        for n in levels:
            for transport in transports:
                with console.status(f"{n} kennel(s) × {fps:g} fps for {seconds:g}s over {transport}…"):
                    use = frames[:n] if isinstance(frames[0], list) else frames
                    results.append(asyncio.run(_level(url, all_kennels[:n], use, fps, seconds, server_pid, transport)))
        return results
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    typer.run(main)
