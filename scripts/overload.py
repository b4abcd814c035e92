#!/usr/bin/env python
"""Open-loop overload: kennels post frames on their camera's schedule whatever the answers do
(as cameras do), at about twice what the server decides, on loopback.

Reports what issue 16 asks: answers by status, how late any 200 came, /healthz latency while
overloaded, and whether every answered frame has exactly one decision-log row that says the same.
Writes docs/overload.json and docs/overload.md.

    python scripts/overload.py --kennels 6 --fps 20 --seconds 20
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import DATASETS, _setup, _start_server  # noqa: E402  (the load test's server and setup)

TOKEN = "overload-admin"


async def _camera(client, kid, headers, frames, fps, until, answers) -> None:
    period, i, tasks = 1.0 / fps, 0, []
    next_t = time.perf_counter()
    while next_t < until:
        await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
        tasks.append(asyncio.create_task(_post(client, kid, headers, frames[i % len(frames)], answers)))
        i += 1
        next_t += period
    await asyncio.gather(*tasks)


async def _post(client, kid, headers, data, answers) -> None:
    t0 = time.perf_counter()
    try:
        r = await client.post(f"/v1/kennels/{kid}/frames", content=data, headers=headers)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        answers.append({"kennel": kid, "status": r.status_code, "s": time.perf_counter() - t0,
                        "frame_id": body.get("frame_id"), "door": body.get("decision"), "error": body.get("error")})
    except httpx.HTTPError as exc:
        answers.append({"kennel": kid, "status": type(exc).__name__, "s": time.perf_counter() - t0})


async def _health(url, until, out) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                ok = (await c.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append(time.perf_counter() - t0 if ok else float("inf"))
            await asyncio.sleep(0.25)


async def _run(url, kennels, frames, fps, seconds) -> tuple[list[dict], list[float]]:
    answers: list[dict] = []
    health: list[float] = []
    limits = httpx.Limits(max_connections=len(kennels) * int(fps) * 4, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        until = time.perf_counter() + seconds
        await asyncio.gather(_health(url, until + 2, health),
                             *[_camera(client, kid, h, frames, fps, until, answers) for kid, h in kennels])
    return answers, health


def main(
    kennels: int = typer.Option(6, help="Kennels, each a camera posting on its own schedule."),
    fps: float = typer.Option(20.0, help="Frames per second per kennel (open loop)."),
    seconds: float = typer.Option(20.0, help="How long the overload lasts."),
    out: Path = typer.Option(Path("docs"), help="Where overload.json/.md go."),
) -> None:
    """Open-loop overload on a fresh server; answers, lateness, /healthz and log consistency."""
    frames = [f.read_bytes() for f in sorted((DATASETS / "catsdogs" / "dog").iterdir())[-50:]]
    with tempfile.TemporaryDirectory(prefix="kennelgate-overload-") as tmp:
        port = 19000 + os.getpid() % 1000
        proc = _start_server(Path(tmp), port, TOKEN)
        url, admin = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
        try:
            ks = _setup(url, admin, kennels, 150)
            answers, health = asyncio.run(_run(url, ks, frames, fps, seconds))
            time.sleep(2)
            with httpx.Client(base_url=url, headers=admin, timeout=60) as c:
                rows = [r for kid, _ in ks for r in c.get("/v1/decisions", params={"kennel_id": kid, "limit": 10000}).json()]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    by_frame: dict[str, list[dict]] = {}
    for r in rows:
        by_frame.setdefault(r["frame_id"], []).append(r)
    ok = [a for a in answers if a["status"] == 200]
    mismatched = [a for a in ok if len(by_frame.get(a["frame_id"], [])) != 1 or by_frame[a["frame_id"]][0]["door"] != a["door"]]
    late_logged_open = [a for a in answers if a["status"] == 503 and any(r["door"] == "open" for r in by_frame.get(a["frame_id"] or "", []))]
    statuses: dict[str, int] = {}
    for a in answers:
        statuses[str(a["status"])] = statuses.get(str(a["status"]), 0) + 1
    ok_s = np.array([a["s"] for a in ok]) if ok else np.zeros(1)
    report = {
        "command": "python " + " ".join(sys.argv), "cpus": os.cpu_count(), "kennels": kennels, "fps_per_kennel": fps,
        "seconds": seconds, "frames_sent": len(answers), "statuses": statuses,
        "answered_200_per_s": round(len(ok) / seconds, 1),
        "ok_p50_s": round(float(np.percentile(ok_s, 50)), 3), "ok_p99_s": round(float(np.percentile(ok_s, 99)), 3),
        "ok_max_s": round(float(ok_s.max()), 3), "ok_later_than_2s": int((ok_s > 2.0).sum()),
        "opens": sum(a["door"] == "open" for a in ok),
        "healthz_max_s": round(max(health), 3) if health else None, "healthz_over_1s": sum(h > 1.0 for h in health),
        "ok_without_exactly_one_matching_row": len(mismatched), "late_answers_logged_open": len(late_logged_open),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "overload.json").write_text(json.dumps(report, indent=2))
    lines = ["# Open-loop overload", "", f"Command: `{report['command']}` ({os.cpu_count()} cores, loopback). "
             f"{kennels} kennels × {fps:g} frames/s posted on schedule whatever the answers do, for {seconds:g} s.", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.items() if k not in ("command",)]
    (out / "overload.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
