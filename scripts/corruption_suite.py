#!/usr/bin/env python3
"""Run the corruption suite on ../shared/datasets and write docs/corruptions.md + heat-map.

Gallery (as a shelter would set it up): 80% of catsdogs/{cat,dog}, plus `other` negatives
(others_objects/ and every second photo of others/). Test: the other 20% of cats and dogs, and
as unknowns the other half of others/ and all of raccoon/ (never in the gallery).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Optional

import typer

from index.folders import OTHER, LabeledPhoto, scan_species
from kennelgate.corruptions import CORRUPTIONS, SEVERITIES
from kennelgate.deciders import decider_from
from kennelgate.engine import Engine
from kennelgate.progress import progress_bar
from kennelgate.robustness import run_suite
from kennelgate.robustness_report import write_suite_report
from kennelgate.settings import Settings

cli = typer.Typer(add_completion=False)


def split(data: Path, per_class: Optional[int], seed: int = 0) -> tuple[list[LabeledPhoto], list[LabeledPhoto]]:
    gallery, test = [], []
    for species in ("cat", "dog"):
        photos = scan_species(data / "catsdogs" / species, species)
        random.Random(seed).shuffle(photos)
        cut = int(0.8 * len(photos))
        gallery += photos[:cut]
        test += photos[cut:][:per_class] if per_class else photos[cut:]
    others = sorted(scan_species(data / "others", "unknown"), key=lambda p: p.path.name)
    gallery += [LabeledPhoto(p.path, OTHER, None) for p in others[::2]]
    gallery += [LabeledPhoto(p.path, OTHER, None) for p in scan_species(data / "others_objects", OTHER)]
    raccoons = scan_species(data / "raccoon", "raccoon")
    random.Random(seed).shuffle(raccoons)
    test += others[1::2] + (raccoons[:per_class] if per_class else raccoons)
    return gallery, test


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where corruptions.md, .json and the heat-map go."),
    per_class: Optional[int] = typer.Option(None, help="At most this many test photos per class (quick runs)."),
    corruptions: str = typer.Option(",".join(CORRUPTIONS), help="Comma list of corruptions."),
    severities: str = typer.Option(",".join(map(str, SEVERITIES)), help="Comma list of severities 1-5."),
    seed: int = typer.Option(0, help="Split and corruption seed."),
) -> None:
    """The corruption suite with the default model, as documented in docs/corruptions.md."""
    settings = Settings()
    engine = Engine(settings)
    gphotos, tphotos = split(data, per_class, seed)
    with progress_bar("embedding gallery", len(gphotos)) as advance:
        kept, vectors, _ = engine.embed_photos(gphotos, advance)
    gallery = engine.gallery_from(kept, vectors)
    decider = decider_from(settings, gallery)
    names = [c for c in corruptions.split(",") if c]
    sevs = [int(s) for s in severities.split(",") if s]
    with progress_bar("corruption × severity", 1 + len(names) * len(sevs)) as advance:
        result = run_suite(engine, decider, tphotos, names, sevs, settings.health, settings.window_k, seed, advance)
    path = write_suite_report(result, out, command="python " + " ".join(sys.argv))
    typer.echo(f"report: {path}")


if __name__ == "__main__":
    cli()
