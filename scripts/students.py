#!/usr/bin/env python3
"""Distil smaller students of the default encoder and compare them with it: docs/students.md.

Students (``kennelgate model distill`` does the same for one): the same network at 160 px, and
the network with 30% of its channels pruned (torch-pruning) at 224 px. Each is trained without
labels to reproduce the teacher's embeddings on the gallery split's photos only (the corruption
suite's 80% of catsdogs + `other` negatives); the comparison is the benchmark's evaluation on the
held-out test split, every variant with a gallery embedded by itself, plus speed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import typer

from embedder import registry
from embedder.export.distill import DistillConfig, distill, student_name
from kennelgate.bench import Variant
from kennelgate.compare import compare_variants, markdown
from kennelgate.progress import progress_bars
from kennelgate.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from corruption_suite import split  # noqa: E402 - the same split as the other reports

cli = typer.Typer(add_completion=False)
STUDENTS = (DistillConfig(input_size=160, epochs=5), DistillConfig(prune_ratio=0.3, epochs=5))


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where students.md/.json go."),
    retrain: bool = typer.Option(False, help="Train students again even if they are in the model cache."),
    n: int = typer.Option(64, help="Photos per timing."),
) -> None:
    """Train the students (unless cached), then evaluate and time them beside the teacher."""
    settings = Settings()
    gallery, test = split(data, None)
    teacher = registry.resolve(registry.DEFAULT_MODEL, settings.model_cache)
    photos = [p.path for p in gallery]
    reports = {}
    for cfg in STUDENTS:
        name = student_name(teacher.name, cfg)
        target = settings.model_cache / name
        if registry.is_model_dir(target) and not retrain:
            reports[name] = json.loads((target / "model.json").read_text())["extra"].get("report")
            continue
        t0 = time.time()
        trained = len(photos) - max(1, int(cfg.holdout * len(photos)))
        steps = [(f"{name}: teacher views", len(photos)), (f"{name}: training", cfg.epochs * trained * cfg.views)]
        with progress_bars(steps) as (on_views, on_train):
            _, report = distill(teacher, target, photos, cfg, on_views, on_train)
        reports[name] = {**asdict(report), "seconds": round(time.time() - t0)}
    bench_files = sorted((data / "catsdogs" / "cat").iterdir())[:n]
    variants = [Variant(teacher.name, "cpu")] + [Variant(name, "cpu") for name in reports]
    result = compare_variants(settings, variants, gallery, test, bench_files)
    command = "python " + " ".join(sys.argv)
    (out / "students.json").write_text(json.dumps({"students": reports, "comparison": result}, indent=2))
    lines = [
        "# Distilled students of the default encoder", "",
        "Each student was trained without labels to give the teacher's embedding (cosine loss) on the "
        f"{len(photos)} photos of the gallery split, 3 random views each, and is then used like any model: "
        "the gallery is embedded with the student itself. Evaluation: the held-out test split, as in "
        "[benchmarks.md](benchmarks.md).", "",
        "| student | params | trained | cosine to teacher (held-out views): before → after |",
        "|---|---|---|---|",
    ]
    for name, r in reports.items():
        took = f", {r['seconds'] / 60:.0f} min" if "seconds" in r else ""
        lines.append(
            f"| {name} | {r['params_student'] / 1e6:.2f} M (teacher {r['params_teacher'] / 1e6:.2f} M) | "
            f"{r['epochs']} epochs × {r['train_views']} views{took} | {r['cosine_before']:.3f} → {r['cosine_after']:.3f} |"
        )
    lines += ["", markdown(result, command)]
    (out / "students.md").write_text("\n".join(lines))
    typer.echo(f"report: {out / 'students.md'}")


if __name__ == "__main__":
    cli()
