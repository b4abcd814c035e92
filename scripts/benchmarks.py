#!/usr/bin/env python3
"""Edge-speed benchmarks on ../shared/datasets: writes docs/benchmarks.md and docs/benchmarks.json.

1. Builds the INT8 variant of the default model (calibrated on 300 gallery photos) and FP16.
2. Variants side by side (`kennelgate bench --variants` does the same from the CLI): the same
   evaluation for each (gallery: 80% of catsdogs + `other` negatives; test: the other 20% +
   unknown animals, as in docs/corruptions.md) and the same timings, PyTorch eager fp32 of
   the same encoder as the baseline, all in this one run.
3. The cascade: INT8 tier first, fp32 tier for the frames near its decision boundary, with the
   routing margin tuned on held-out gallery photos.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import onnxruntime
import typer

from embedder import registry
from embedder.export import compress
from kennelgate import cascade
from kennelgate.bench import Variant
from kennelgate.compare import compare_variants, markdown
from kennelgate.progress import progress_bar
from kennelgate.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from corruption_suite import split  # noqa: E402 - the same split as the corruption report

cli = typer.Typer(add_completion=False)
DEFAULT_VARIANTS = (
    "efficientnet-lite0@cpu,efficientnet-lite0@openvino,efficientnet-lite0-int8@cpu,"
    "efficientnet-lite0-int8@openvino,efficientnet-lite0-fp16@cpu"
)
# Students from scripts/students.py join the comparison when they are in the model cache, fp32 and
# INT8 (built here like the teacher's).
STUDENTS = ("efficientnet-lite0-s160", "efficientnet-lite0-pruned30")
CASCADES = "efficientnet-lite0-int8@openvino>efficientnet-lite0@cpu,efficientnet-lite0-s160-int8@openvino>efficientnet-lite0@cpu"


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where benchmarks.md/.json go."),
    variants: str = typer.Option(DEFAULT_VARIANTS, help="model@runtime, comma-separated (students are added when built)."),
    cascades: str = typer.Option(CASCADES, help="small>big tier pairs, comma-separated (skipped when a model is missing)."),
    n: int = typer.Option(64, help="Photos per timing."),
) -> None:
    """INT8/FP16 builds, variants side by side, and the cascade, into docs/benchmarks.md."""
    settings = Settings()
    gallery, test = split(data, None)
    base = registry.resolve(registry.DEFAULT_MODEL, settings.model_cache)
    calib = [p.path for p in gallery]
    random.Random(0).shuffle(calib)
    students = [d for d in (settings.model_cache / name for name in STUDENTS) if registry.is_model_dir(d)]
    for model in [base, *students]:
        with progress_bar(f"{model.name}: INT8 calibration", 300) as advance:
            compress.quantize_int8(model, model.parent / f"{model.name}-int8", calib[:300], on_progress=advance)
    compress.convert_fp16(base, base.parent / f"{base.name}-fp16")
    bench_files = sorted((data / "catsdogs" / "cat").iterdir())[:n]
    t0 = time.time()
    chosen = [Variant.parse(v) for v in variants.split(",")]
    chosen += [Variant(f"{d.name}{suffix}", rt) for d in students for suffix, rt in (("", "cpu"), ("-int8", "openvino"))]
    with progress_bar("variants", len(chosen)) as advance:
        def status(msg: str) -> None:
            if msg.endswith("timing") and not msg.startswith("PyTorch"):
                advance(1)
        result = compare_variants(settings, chosen, gallery, test, bench_files, status=status)
    pairs = [tuple(Variant.parse(v) for v in pair.split(">")) for pair in cascades.split(",") if pair]
    pairs = [(a, b) for a, b in pairs if all(registry.is_model_dir(settings.model_cache / v.model) for v in (a, b))]
    casc = [cascade.evaluate(settings, small, big, gallery, test, bench_files) for small, big in pairs]
    command = "python " + " ".join(sys.argv)
    (out / "benchmarks.json").write_text(json.dumps({"variants": result, "cascades": casc}, indent=2, default=str))
    text = [
        "# Edge speed: model variants, runtimes and the cascade", "",
        f"Machine: {os.cpu_count()} CPU cores (AVX2), ONNX Runtime {onnxruntime.__version__}, "
        f"OpenVINO {_openvino_version()}; run took {time.time() - t0:.0f} s.", "",
        "## Variants side by side", "",
        f"Gallery {len(gallery)} photos (80% of catsdogs + `other` negatives), test {len(test)} "
        "(20% of catsdogs + raccoons and other animals as unknowns), as in [corruptions.md](corruptions.md). "
        f"Timings over {len(bench_files)} `catsdogs/cat` photos.", "",
        markdown(result, command), "",
        "## Cascade", "",
        *(cascade.markdown(c) + "\n" for c in casc),
    ]
    (out / "benchmarks.md").write_text("\n".join(text))
    typer.echo(f"report: {out / 'benchmarks.md'}")


def _openvino_version() -> str:
    try:
        import openvino
    except ImportError:
        return "not installed"
    return openvino.__version__


if __name__ == "__main__":
    cli()
