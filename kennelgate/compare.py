"""Model variants side by side: the same evaluation and the same timings for each one.

Each variant (model × runtime) embeds the same gallery and test photos, is calibrated the same
way and answers the same test; then every stage is timed on the same files. PyTorch eager
fp32 of the base encoder, timed in the same run, is the baseline for every ratio.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from index.evaluation import evaluate
from index.folders import LabeledPhoto
from embedder.export.recipes import torch_module
from kennelgate.bench import BATCHES, Variant, onnx_rows, torch_rows, with_ratios
from kennelgate.deciders import decider_from
from kennelgate.engine import Engine
from kennelgate.settings import Settings

METRICS = ("accuracy", "known_accept_rate", "wrong_accept_rate", "unknown_reject_rate")


def compare_variants(
    settings: Settings,
    variants: Sequence[Variant],
    gallery: Sequence[LabeledPhoto],
    test: Sequence[LabeledPhoto],
    bench_files: Sequence,
    baseline: bool = True,
    status: Optional[Callable[[str], None]] = None,
) -> dict:
    say = status or (lambda _: None)
    out: dict = {"variants": [], "baseline": None, "batches": list(BATCHES)}
    tried_baseline = not baseline
    for v in variants:
        engine = Engine(settings.model_copy(update={"model": v.model, "providers": v.providers}))
        enc = engine.encoder
        say(f"{v.label}: embedding {len(gallery)} gallery + {len(test)} test photos")
        gkept, gvec, _ = engine.embed_photos(gallery)
        tkept, tvec, _ = engine.embed_photos(test)
        g = engine.gallery_from(gkept, gvec)
        decider = decider_from(settings, g)
        result = evaluate([p.species for p in tkept], decider.decide(tvec), g.names())
        say(f"{v.label}: timing")
        rows = onnx_rows(enc, decider, bench_files)
        out["variants"].append({
            "variant": v.label, "model": v.model, "runtime": enc.providers[0], "precision": enc.spec.precision,
            **{m: getattr(result, m) for m in METRICS}, "rows": rows,
        })
        if not tried_baseline:  # the first variant's base encoder, in PyTorch eager fp32
            tried_baseline = True
            base_module = torch_module(enc.spec)
            if base_module is not None:
                say("PyTorch eager fp32 baseline: timing")
                out["baseline"] = {"variant": "PyTorch eager fp32", "rows": torch_rows(
                    base_module, enc, decider, bench_files, settings.threads)}
    if out["baseline"] is not None:
        for v in out["variants"]:
            with_ratios(v["rows"], out["baseline"]["rows"])
    return out


def markdown(result: dict, command: str = "") -> str:
    """The comparison as the tables docs/benchmarks.md shows."""
    lines = [f"Command: `{command}`", ""] if command else []
    head = "| variant | runtime | precision | cat/dog accuracy | cats+dogs accepted | wrong species | unknowns rejected |"
    lines += [head, "|---|---|---|---|---|---|---|"]
    for v in result["variants"]:
        lines.append(
            f"| {v['variant']} | {v['runtime']} | {v['precision']} | {100 * v['accuracy']:.2f}% | "
            f"{100 * v['known_accept_rate']:.2f}% | {100 * v['wrong_accept_rate']:.2f}% | {100 * v['unknown_reject_rate']:.2f}% |"
        )
    lines += ["", "Images/s (× PyTorch eager fp32 of the same encoder, same run):", ""]
    stages = [("decode+preprocess", 1)] + [("encoder", b) for b in result["batches"]] + [
        ("end to end", b) for b in result["batches"]
    ]
    lines.append("| variant | " + " | ".join(f"{s} b{b}" for s, b in stages) + " |")
    lines.append("|---" * (len(stages) + 1) + "|")
    everyone = ([result["baseline"]] if result["baseline"] else []) + result["variants"]
    for v in everyone:
        cells = []
        for s, b in stages:
            r = next((r for r in v["rows"] if r["stage"] == s and r["batch"] == b), None)
            cells.append("" if r is None else f"{r['ips']:.1f}" + (f" ({r['ratio']:.2f}×)" if "ratio" in r else ""))
        lines.append(f"| {v['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
