"""``kennelgate serve``, ``db …``, ``index …`` and ``token …``: the service and its state."""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.table import Table

from index.store import GalleryError
from kennelgate.cli.common import (
    _library, _print_rejected, _settings, console,
)
from kennelgate.progress import err_console, progress_bar

db_app = typer.Typer(help="Database schema (Alembic migrations) and decision-log housekeeping.", no_args_is_help=True)
index_app = typer.Typer(help="The serving index: nightly rebuild, status.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the REST API (device frames, admin endpoints, /docs) on the configured home and database."""
    import logging

    import uvicorn

    from app.header_timeout import protocol
    from app.main import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = _settings()
    if not s.admin_token:
        err_console.print(
            "[yellow]no KENNELGATE_ADMIN_TOKEN set:[/yellow] admin endpoints need a token from "
            "`kennelgate token admin`"
        )
    # One worker: the encoder already uses every core, and door windows live in this process.
    # Stream messages may be as large as a posted frame; JPEG frames gain nothing from deflate.
    # A request's head must arrive within header_timeout_s (slowloris); idle keep-alive is uvicorn's.
    uvicorn.run(create_app(s), host=host, port=port, log_level=log_level, workers=1,
                ws_max_size=s.max_bytes + 1024, ws_per_message_deflate=False, http=protocol(s.header_timeout_s))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the schema (SQLite by default, PostgreSQL via KENNELGATE_DATABASE_URL)."""
    from app.db import migrate

    s = _settings()
    migrate.upgrade(s.db_url, revision)
    console.print(f"database at revision [bold]{revision}[/bold] ({_safe_url(s.db_url)})")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision ('base' drops every table).")) -> None:
    """Step the schema back to ``revision``."""
    from app.db import migrate

    migrate.downgrade(_settings().db_url, revision)
    console.print(f"database at revision [bold]{revision}[/bold]")


@db_app.command("current")
def db_current() -> None:
    """The schema revision of the database, and the newest one this version knows."""
    from app.db import migrate
    from app.db.session import make_engine

    s = _settings()
    engine = make_engine(s.db_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"{_safe_url(s.db_url)}: revision {current or '(empty)'}; head {migrate.head_revision(s.db_url)}")


@db_app.command("prune")
def db_prune(days: Optional[int] = typer.Option(None, help="Keep this many days (default: settings).")) -> None:
    """Delete decision-log rows older than the retention period, and kept frames older than theirs."""
    from app.db.session import Database
    from app.housekeeping import prune_decisions
    from app.service import keeper_of

    s = _settings()
    keep = s.decision_retention_days if days is None else days
    n = prune_decisions(Database(s.db_url), keep)
    console.print(f"deleted {n} decision(s) older than {keep} days" if keep else "retention is 0: nothing deleted")
    frames = keeper_of(s).prune()
    console.print(f"deleted {frames} kept frame(s) older than {s.keep_frames_days} days")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@index_app.command("rebuild")
def index_rebuild(
    force: bool = typer.Option(False, help="Promote the new version even if judging on held-out photos finds it worse."),
) -> None:
    """Re-embed every stored photo with the current model and swap the new index in atomically.

    Safe while the API serves: it keeps answering from the old version until the swap, and a crash
    before the swap leaves the old version in place. Run it nightly (cron, systemd timer, compose).
    """
    from app.rebuild import rebuild

    library = _library()
    library.engine.encoder
    with progress_bar("re-embedding", len(library.all_photos())) as advance:
        report = rebuild(library, on_progress=advance, force=force)
    if not report.version:
        console.print("no photos stored and no index yet: nothing to rebuild")
        return
    table = Table("species", "photos before", "after", "of which field photos", "field held out to judge")
    for name, c in report.changes.items():
        table.add_row(name, str(c["before"]), str(c["after"]), str(c["field"]), str(c["held_out"]))
    console.print(table)
    _print_rejected(report.skipped)
    if report.promoted:
        console.print(f"index {report.previous or '(none)'} → [bold]{report.version}[/bold]: "
                      f"{report.photos} photos in {report.seconds:.1f}s; {report.why}")
    else:
        console.print(f"[yellow]not promoted[/yellow]: {report.why}")


@index_app.command("status")
def index_status() -> None:
    """Serving version, species and photo counts (library vs index)."""
    library = _library()
    counts = library.counts()
    try:
        snap = library.engine.snapshot()
        indexed = {n: len(p) for n, p in snap.gallery.species.items()}
        version = snap.version
    except GalleryError:
        indexed, version = {}, "(none)"
    table = Table("species", "photos stored", "photos indexed")
    for name in sorted(set(counts) | set(indexed)):
        table.add_row(name, str(counts.get(name, 0)), str(indexed.get(name, 0)))
    console.print(table)
    console.print(f"index version [bold]{version}[/bold]")


@token_app.command("admin")
def token_admin(label: str = typer.Option("cli", help="A note to recognise the token by.")) -> None:
    """Issue an admin token and print it (only its hash is stored)."""
    _issue_token("admin", label)


@token_app.command("staff")
def token_staff(label: str = typer.Option("cli", help="A note to recognise the token by (e.g. who holds it).")) -> None:
    """Issue a staff token (console: review, relabel, override; no tokens or kennels) and print it."""
    _issue_token("staff", label)


def _issue_token(kind: str, label: str) -> None:
    from app import auth
    from app.db import migrate
    from app.db.session import Database

    s = _settings()
    s.home.mkdir(parents=True, exist_ok=True)
    if s.auto_migrate:
        migrate.upgrade(s.db_url)
    _, token = auth.issue(Database(s.db_url), kind, None, label)
    sys.stdout.write(token + "\n")
