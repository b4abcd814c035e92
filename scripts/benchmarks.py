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
import random
import sys
import time
from pathlib import Path

import numpy as np
import typer

from embedder import registry
from embedder.export import compress
from index.calibration import calibrate
from index.decision import Decider
from kennelgate import cascade
from kennelgate.bench import Variant, _rate
from kennelgate.compare import compare_variants, markdown
from kennelgate.engine import Engine
from kennelgate.progress import progress_bar
from kennelgate.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from corruption_suite import split  # noqa: E402 - the same split as the corruption report

cli = typer.Typer(add_completion=False)
DEFAULT_VARIANTS = (
    "efficientnet-lite0@cpu,efficientnet-lite0@openvino,efficientnet-lite0-int8@cpu,"
    "efficientnet-lite0-int8@openvino,efficientnet-lite0-fp16@cpu"
)


def _tier(settings: Settings, model: str, providers: str, gallery) -> tuple[Engine, cascade.Tier]:
    engine = Engine(settings.model_copy(update={"model": model, "providers": providers}))
    kept, vectors, _ = engine.embed_photos(gallery)
    g = engine.gallery_from(kept, vectors)
    cal = calibrate(g, settings.k, settings.target_accept, settings.target_far)
    return engine, cascade.Tier(engine.encoder, Decider(g, cal, method=settings.method, k=settings.k))


def run_cascade(settings: Settings, small: Variant, big: Variant, gallery, test, bench_files) -> dict:
    """Tune the routing margin on 20% of the gallery (tiers built from the other 80%), then test."""
    rng = random.Random(1)
    idx = list(range(len(gallery)))
    rng.shuffle(idx)
    cut = int(0.8 * len(idx))
    build, tune = [gallery[i] for i in idx[:cut]], [gallery[i] for i in idx[cut:]]
    known = {p.species for p in build} - {"other"}
    out: dict = {"small": small.label, "big": big.label}
    tiers = {}
    for name, v in (("small", small), ("big", big)):
        engine, tier = _tier(settings, v.model, v.providers, build)
        tiers[name] = tier
        for split_name, photos in (("tune", tune), ("test", test)):
            kept, vecs, _ = engine.embed_photos(photos)
            out.setdefault(split_name, {})[name] = (kept, tier.decider.decide(vecs))
    thr = tiers["small"].decider.thresholds
    res = {}
    for split_name in ("tune", "test"):
        (kept_s, d_small), (kept_b, d_big) = out[split_name]["small"], out[split_name]["big"]
        assert [p.path for p in kept_s] == [p.path for p in kept_b]
        truths = [p.species if p.species in known else "other" for p in kept_s]
        res[split_name] = (truths, d_small, d_big, cascade.boundary_margin(d_small, thr))
    truths, d_small, d_big, margin = res["tune"]
    m, _, _ = cascade.tune_margin(margin, cascade.correct(truths, d_small, known), cascade.correct(truths, d_big, known))
    truths, d_small, d_big, margin = res["test"]
    routed = np.abs(margin) < m
    combined = cascade.combine(d_small, d_big, routed)
    summary = {
        "margin": m,
        "small alone": cascade.summary(truths, d_small, known),
        "big alone": cascade.summary(truths, d_big, known),
        "cascade": cascade.summary(truths, combined, known, routed),
    }
    # Speed: end to end (decode → decision) over the bench files, each tier alone and the cascade.
    c = cascade.Cascade(tiers["small"], tiers["big"], m)
    enc = tiers["small"].encoder

    def e2e(fn, b=8):
        def run() -> int:
            for i in range(0, len(bench_files), b):
                fn([enc.load(f) for f in bench_files[i : i + b]])
            return len(bench_files)
        return _rate(run)

    summary["speed_b8"] = {
        "small alone": e2e(tiers["small"].decide), "big alone": e2e(tiers["big"].decide), "cascade": e2e(lambda ims: c.decide(ims)),
    }
    summary["routed_on_bench_files"] = float(c.decide([enc.load(f) for f in bench_files])[1].mean())
    return summary


def cascade_markdown(r: dict, small: str, big: str) -> str:
    lines = [
        f"Small tier **{small}**, big tier **{big}**; routing margin {r['margin']:.4f} (tuned on 20% of the gallery "
        "held out, to keep open-set accuracy within 0.1 pt of the big tier).", "",
        "| | open-set accuracy | cat/dog accuracy | wrong accepts | frames to the big tier | end to end b8 img/s |",
        "|---|---|---|---|---|---|",
    ]
    for k in ("small alone", "big alone", "cascade"):
        s = r[k]
        routed = "-" if s["routed"] is None else f"{100 * s['routed']:.1f}%"
        lines.append(
            f"| {k} | {100 * s['open_set_accuracy']:.2f}% | {100 * s['cat_dog_accuracy']:.2f}% | "
            f"{100 * s['wrong_accepts']:.2f}% | {routed} | {r['speed_b8'][k]:.1f} |"
        )
    return "\n".join(lines) + "\n"


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where benchmarks.md/.json go."),
    variants: str = typer.Option(DEFAULT_VARIANTS, help="model@runtime, comma-separated."),
    n: int = typer.Option(64, help="Photos per timing."),
) -> None:
    """INT8/FP16 builds, variants side by side, and the cascade, into docs/benchmarks.md."""
    settings = Settings()
    gallery, test = split(data, None)
    base = registry.resolve(registry.DEFAULT_MODEL, settings.model_cache)
    calib = [p.path for p in gallery]
    random.Random(0).shuffle(calib)
    with progress_bar("INT8 calibration", 300) as advance:
        compress.quantize_int8(base, base.parent / f"{base.name}-int8", calib[:300], on_progress=advance)
    compress.convert_fp16(base, base.parent / f"{base.name}-fp16")
    bench_files = sorted((data / "catsdogs" / "cat").iterdir())[:n]
    t0 = time.time()
    chosen = [Variant.parse(v) for v in variants.split(",")]
    with progress_bar("variants", len(chosen)) as advance:
        def status(msg: str) -> None:
            if msg.endswith("timing") and not msg.startswith("PyTorch"):
                advance(1)
        result = compare_variants(settings, chosen, gallery, test, bench_files, status=status)
    small, big = Variant("efficientnet-lite0-int8", "openvino"), Variant("efficientnet-lite0", "cpu")
    casc = run_cascade(settings, small, big, gallery, test, bench_files)
    command = "python " + " ".join(sys.argv)
    (out / "benchmarks.json").write_text(json.dumps({"variants": result, "cascade": casc}, indent=2, default=str))
    text = [
        "# Edge speed: model variants, runtimes and the cascade", "",
        f"Machine: {__import__('os').cpu_count()} CPU cores (AVX2), ONNX Runtime "
        f"{__import__('onnxruntime').__version__}, OpenVINO {__import__('openvino').__version__}; "
        f"run took {time.time() - t0:.0f} s.", "",
        "## Variants side by side", "",
        f"Gallery {len(gallery)} photos (80% of catsdogs + `other` negatives), test {len(test)} "
        "(20% of catsdogs + raccoons and other animals as unknowns), as in [corruptions.md](corruptions.md). "
        f"Timings over {len(bench_files)} `catsdogs/cat` photos.", "",
        markdown(result, command), "",
        "## Cascade", "",
        cascade_markdown(casc, small.label, big.label),
    ]
    (out / "benchmarks.md").write_text("\n".join(text))
    typer.echo(f"report: {out / 'benchmarks.md'}")


if __name__ == "__main__":
    cli()
