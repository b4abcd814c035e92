"""``kennelgate gallery …``: the species gallery, built from the photo library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from index.folders import scan_root
from index.store import GalleryError
from kennelgate.cli.common import (
    _engine, _fail, _library, _print_index_report, _print_rejected, _settings, console,
)
from kennelgate.progress import progress_bar

gallery_app = typer.Typer(help="Manage the species gallery.", no_args_is_help=True)


def _print_add_report(report, engine=None) -> None:
    console.print(f"{report.species}: {report.added} photo(s) added, {report.photos} in all")
    _print_rejected(report.rejected)
    console.print(f"gallery version [bold]{report.version}[/bold]")
    if engine is not None and report.species != "other":
        _print_readiness(engine, [report.species])


def _print_readiness(engine, names: Optional[list[str]] = None) -> None:
    """The readiness card of each species: can a door depend on it yet?"""
    from index.readiness import readiness

    engine.refresh()
    snap = engine.snapshot()
    method = _settings().method
    for name in names or snap.gallery.names(include_other=False):
        try:
            card = readiness(snap.gallery, engine.decider.calibration, name, method)
        except KeyError as exc:
            _fail(str(exc).strip("'\""))
        mark = "[green]ready[/green]" if card.ready else "[yellow]not ready[/yellow]"
        console.print(
            f"[bold]{card.species}[/bold]: {mark} — {card.photos} photos, {card.scenes} distinct scenes, "
            f"{100 * card.predicted_accept:.1f}% of new photos predicted accepted (threshold {card.threshold:.3f})"
            + (f", mistaken for {card.confused_with} {100 * card.confused_rate:.1f}%" if card.confused_with else "")
        )
        for tip in card.advice:
            console.print(f"  • {tip}")
        for c in card.conflicts:
            console.print(f"    conflict: {c.photo} (filed under {c.filed_under}, score {c.score:.3f})")


@gallery_app.command("readiness")
def gallery_readiness(
    species: Optional[list[str]] = typer.Argument(None, help="Species to check (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="The cards as JSON."),
) -> None:
    """Is each species ready for a door to depend on it? Predicted accept rate on new photos,
    distinct scenes, confusions, photos filed elsewhere that look like it, and what to do."""
    from index.readiness import readiness

    engine = _engine()
    try:
        if as_json:
            snap = engine.snapshot()
            names = species or snap.gallery.names(include_other=False)
            cards = [readiness(snap.gallery, engine.decider.calibration, n, _settings().method).model_dump() for n in names]
            sys.stdout.write(json.dumps(cards, indent=2) + "\n")
            return
        _print_readiness(engine, species)
    except GalleryError as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(str(exc).strip("'\""))


@gallery_app.command("build")
def gallery_build(root: Path = typer.Argument(..., help="ROOT/<species>/[<breed>/]<images>")) -> None:
    """Replace the photo library with a folder of species folders and index it (one new version)."""
    try:
        photos = scan_root(root)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if not photos:
        _fail(f"no images under {root}/<species>/")
    library = _library()
    library.engine.encoder  # build the model (if needed) before the progress bar starts
    with progress_bar("indexing", len(photos)) as advance:
        try:
            report = library.replace_all(photos, advance)
        except ValueError as exc:
            _fail(str(exc))
    _print_index_report(report)


@gallery_app.command("add")
def gallery_add(
    species: str = typer.Argument(..., help="Species name, e.g. raccoon (or 'other' for negatives)."),
    folder: Path = typer.Argument(..., help="Folder of photos (sub-folders = breeds)."),
    replace: bool = typer.Option(False, help="Replace the species' photos instead of adding to them."),
) -> None:
    """Add a species (or more photos of one): indexing only, no retraining."""
    from index.folders import scan_species

    try:
        n = len(scan_species(folder, species))
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    library = _library()
    library.engine.encoder
    with progress_bar(f"indexing {species}", n) as advance:
        try:
            if replace and species.strip().lower() in library.counts():
                library.remove_species(species)
            report = library.add_folder(species, folder, on_progress=advance)
        except (ValueError, GalleryError) as exc:
            _fail(str(exc))
    if not report.added:
        _print_rejected(report.rejected)
        _fail(f"no usable new photos of {report.species!r} in {folder}")
    _print_add_report(report, library.engine)


@gallery_app.command("remove")
def gallery_remove(species: str) -> None:
    """Remove a species and its photos (a new version; the others are untouched)."""
    try:
        version = _library().remove_species(species)
    except (KeyError, ValueError, GalleryError) as exc:
        _fail(str(exc).strip("'\""))
    console.print(f"removed {species}; gallery version [bold]{version}[/bold]")


@gallery_app.command("list")
def gallery_list() -> None:
    """Species, photo counts, breeds and thresholds of the current gallery."""
    try:
        snap = _engine().snapshot()
    except GalleryError as exc:
        _fail(str(exc))
    method = _settings().method
    table = Table("species", "photos", "breeds", f"threshold ({method})", "own photos accepted (LOO)")
    for name in snap.gallery.names():
        p = snap.gallery.species[name]
        cal = snap.calibration.methods[method].get(name)
        breeds = sorted({b for b in p.breeds if b})
        table.add_row(
            name, str(len(p)), f"{len(breeds)}" if breeds else "-",
            f"{cal.threshold:.3f}" if cal else "(negatives)",
            f"{100 * cal.loo_accept_rate:.1f}%" if cal else "-",
        )
    console.print(table)
    console.print(f"version {snap.version}, model {snap.gallery.model_name} ({snap.gallery.fingerprint})")


