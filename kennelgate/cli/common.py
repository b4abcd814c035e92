"""What every command group shares: settings from the global options, the engine, the photo
library, and how errors and reports are printed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from index.folders import IMAGE_SUFFIXES
from kennelgate.progress import announce_model_build, err_console
from kennelgate.settings import Settings

console = Console()

_state: dict = {}

HomeOpt = typer.Option(None, "--home", envvar="KENNELGATE_HOME", help="State folder (gallery, reports).")


def main(
    home: Optional[Path] = HomeOpt,
    model: Optional[str] = typer.Option(None, "--model", envvar="KENNELGATE_MODEL", help="Model name or directory."),
    method: Optional[str] = typer.Option(None, "--method", help="Decision method: contrast (default: kNN minus half the kNN score to photos filed under other), knn or prototype."),
) -> None:
    overrides = {k: v for k, v in {"home": home, "model": model, "method": method}.items() if v is not None}
    _state["settings"] = Settings(**overrides)

def _settings() -> Settings:
    return _state.get("settings") or Settings()


def _engine():
    from kennelgate.engine import Engine

    return Engine(_settings(), on_model_build=announce_model_build)


def _fail(msg: str) -> None:
    err_console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def _print_rejected(rejected) -> None:
    if rejected:
        err_console.print(f"[yellow]{len(rejected)} file(s) rejected:")
        for f, reason in rejected:
            err_console.print(f"  {f}: {reason}")


def _print_index_report(report) -> None:
    table = Table("species", "photos indexed")
    for name, n in report.added.items():
        table.add_row(name, str(n))
    console.print(table)
    _print_rejected(report.rejected)
    console.print(f"gallery version [bold]{report.version}[/bold]")



def _library():
    """The photo library (database + stored photos) that the gallery is built from."""
    from app.db import migrate
    from app.db.session import Database
    from app.library import PhotoLibrary

    s = _settings()
    s.home.mkdir(parents=True, exist_ok=True)
    if s.auto_migrate:
        migrate.upgrade(s.db_url)
    library = PhotoLibrary(s.photos_dir, Database(s.db_url), _engine())
    for line in library.reconcile():  # a change interrupted by a crash is finished or undone first
        err_console.print(f"[yellow]index repaired:[/] {line}")
    return library



def _expand(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out

