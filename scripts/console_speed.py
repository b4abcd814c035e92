#!/usr/bin/env python
"""Console pages with a full decision log: how fast each page answers (SQLite and PostgreSQL),
and a screenshot of each for docs/console.md.

Starts ``kennelgate serve`` on loopback, uploads real photos, sends real frames (so the newest
decisions have thumbnails), then fills the log to ``--decisions`` rows spread over 90 days and
times every console page through HTTP, signed in as a staff member would be.

    python scripts/console_speed.py --decisions 100000 --db sqlite --db postgresql
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import DATASETS, _setup, _start_server  # noqa: E402  (the load test's server and setup)

REPO = Path(__file__).resolve().parents[1]
TOKEN = "console-speed-admin"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PAGES = {
    "kennels, live": "/console/",
    "one kennel (door history)": "/console/kennels/{kid}",
    "review: rejected": "/console/review?outcome=rejected",
    "review: one kennel, last day": "/console/review?kennel={kid}&outcome=all&hours=24",
    "review: faults": "/console/review?outcome=faults",
    "review: labelled": "/console/review?outcome=labelled",
    "species and readiness": "/console/species",
    "audit": "/console/audit",
}
console = Console()


def _pg_database() -> tuple[str, callable]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"kg_console_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


def _fill(db_url: str, n: int, kennels: list[int]) -> None:
    """``n`` decision rows over 90 days: the mix a busy shelter logs (most frames decided and
    admitted, some kept out, a few faults and errors, some labelled by staff)."""
    from sqlalchemy import create_engine, insert

    from app.db.models import DecisionRecord

    engine = create_engine(db_url)
    rng = random.Random(0)
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    chunk = 5000
    for start in track(range(0, n, chunk), description=f"filling the log with {n} decisions", console=console):
        rows = []
        for i in range(start, min(n, start + chunk)):
            roll = rng.random()
            accepted = roll < 0.7
            species = rng.choice(["cat", "dog"]) if accepted else "other"
            health = "ok" if roll < 0.97 else rng.choice(["dark", "blur", "frozen"])
            rows.append(dict(
                frame_id=uuid.uuid4().hex, kennel_id=rng.choice(kennels),
                created_at=now - timedelta(seconds=(n - i) * 90 * 86400 / n), species=species,
                best=rng.choice(["cat", "dog"]), score=rng.random(), accepted=accepted,
                door="open" if accepted and rng.random() < 0.8 else "closed", reason="filled by console_speed.py",
                error=roll > 0.995, health=health, reused=False, latency_ms=20.0, model="", index_version="v1",
                label=rng.choice(["cat", "dog", "other"]) if rng.random() < 0.01 else None,
            ))
        with engine.begin() as c:
            c.execute(insert(DecisionRecord), rows)
    engine.dispose()


def _time_pages(url: str, staff: str, kid: int, repeats: int) -> dict[str, dict]:
    out = {}
    with httpx.Client(base_url=url, timeout=60, cookies={"kennelgate_console": staff}) as c:
        for name, path in PAGES.items():
            path = path.format(kid=kid)
            r = c.get(path)
            assert r.status_code == 200 and "Sign in" not in r.text[:2000], f"{path}: {r.status_code}"
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                c.get(path).raise_for_status()
                times.append(1000 * (time.perf_counter() - t0))
            times.sort()
            out[name] = {"path": path, "median_ms": statistics.median(times),
                         "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))], "bytes": len(r.content)}
    return out


def _screens(url: str, staff: str, kid: int, out: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        ctx = b.new_context(viewport={"width": 1280, "height": 900})
        ctx.add_cookies([{"name": "kennelgate_console", "value": staff, "url": url}])
        page = ctx.new_page()
        for name, path in [("kennels", "/console/"), ("kennel", f"/console/kennels/{kid}"),
                           ("review", f"/console/review?kennel={kid}&outcome=all"), ("species", "/console/species"),
                           ("audit", "/console/audit")]:
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{name}.png"))
            shots.append(name)
        b.close()
    return shots


def main(
    decisions: int = typer.Option(100_000, help="rows in the decision log while the pages are timed"),
    db: list[str] = typer.Option(["sqlite", "postgresql"], help="databases to measure (sqlite, postgresql)"),
    repeats: int = typer.Option(20, help="timed loads of each page"),
    screens: bool = typer.Option(True, help="save a screenshot of each page (docs/console/*.png)"),
    out: Path = typer.Option(REPO / "docs", help="where console.json, console.md and the screenshots go"),
) -> None:
    """Time the staff console's pages with a full decision log, on SQLite and PostgreSQL."""
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for which in db:
        home = Path(tempfile.mkdtemp(prefix="kg-console-"))
        drop = None
        env = {"KENNELGATE_THUMBNAILS": "all", "KENNELGATE_THUMBNAIL_INTERVAL_S": "0"}
        if which == "postgresql":
            env["KENNELGATE_DATABASE_URL"], drop = _pg_database()
        db_url = env.get("KENNELGATE_DATABASE_URL") or f"sqlite:///{home / 'kennelgate.db'}"
        port = 8700 + len(results)
        proc = _start_server(home, port, TOKEN, env)
        url = f"http://127.0.0.1:{port}"
        admin = {"Authorization": f"Bearer {TOKEN}"}
        try:
            kennels = _setup(url, admin, 10, 60)
            kid, device = kennels[1]
            with httpx.Client(base_url=url, timeout=60) as c:
                photos = sorted((DATASETS / "catsdogs" / "cat").iterdir())[200:212] + sorted((DATASETS / "raccoon").iterdir())[:12]
                _fill(db_url, decisions, [k for k, _ in kennels])
                for f in photos:  # the newest frames are real, with thumbnails
                    c.post(f"/v1/kennels/{kid}/frames", content=f.read_bytes(), headers={**device, "Content-Type": "image/jpeg"})
                staff = c.post("/v1/tokens/staff", json={"label": "console_speed"}, headers=admin).json()["token"]
                frames = c.get("/v1/decisions", params={"kennel_id": kid, "limit": 12}, headers=admin).json()
                c.post("/v1/decisions/labels", json={"frame_ids": [f["frame_id"] for f in frames[:3]], "species": "other"},
                       headers={"Authorization": f"Bearer {staff}"})
                c.post(f"/v1/kennels/{kid}/override", json={"action": "hold_closed", "minutes": 30, "reason": "cleaning"},
                       headers={"Authorization": f"Bearer {staff}"})
            with console.status(f"timing {len(PAGES)} pages × {repeats} on {which}…"):
                results[which] = _time_pages(url, staff, kid, repeats)
            if screens and which == db[0]:
                _screens(url, staff, kid, out / "console")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if drop:
                drop()
    report = {"decisions": decisions, "repeats": repeats, "results": results, "cores": os.cpu_count()}
    (out / "console.json").write_text(json.dumps(report, indent=2))
    lines = ["| page | " + " | ".join(f"{w} median / p95 ms" for w in results) + " |",
             "|---|" + "---|" * len(results)]
    for name in PAGES:
        lines.append(f"| {name} | " + " | ".join(f"{r[name]['median_ms']:.0f} / {r[name]['p95_ms']:.0f}"
                                                  for r in results.values()) + " |")
    table = "\n".join(lines)
    console.print(table)
    _write_md(out / "console.md", report, table, screens)


def _write_md(path: Path, report: dict, table: str, screens: bool) -> None:
    shots = "".join(f"\n### {n}\n\n![{n}](console/{n}.png)\n" for n in ("kennels", "kennel", "review", "species", "audit")) if screens else ""
    path.write_text(f"""# Staff console

Command: `python scripts/console_speed.py --decisions {report['decisions']}` (writes docs/console.json, this page
and the screenshots). Each page is loaded {report['repeats']} times through HTTP by a signed-in staff member,
with **{report['decisions']:,} decisions** in the log (10 kennels, 90 days), on this {report['cores']}-core machine.

{table}

The stack: pages rendered by the app itself (FastAPI + Jinja2, `app/console/`), a little plain JavaScript
(`app/console/static/console.js`) for relabelling, overrides, uploads and the live refresh; every asset is
served locally, nothing is built. Staff on a phone get readable pages with no framework to download, the
pages are usable while the JavaScript loads, and every change goes through the same REST API the devices
and scripts use (so it is audited, counted and announced the same way).
{shots}""")


if __name__ == "__main__":
    typer.run(main)
