#!/usr/bin/env python3
"""Train the packaged camera-fault detectors and measure them on photos they never saw.

Training photos: the corruption suite's gallery split (80% of catsdogs, `other` negatives) and
every second photo of breeds/ (studio shots, white and blurred backgrounds: clean frames of
kinds catsdogs rarely has). Held out: the suite's test split (20% of catsdogs, raccoons, other
animals) and the other half of breeds/. Writes kennelgate/data/health_detector.json.gz,
docs/health_gate.md and a plot. The corruption suite (docs/corruptions.md) then measures the
whole gate, rules and detectors, on the test split through the service's path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from index.folders import scan_species
from kennelgate.health_detector import PACKAGED, FaultDetector
from kennelgate.health_training import CLEAN, EVAL_PLAN, SOURCES, TRAIN_PLAN, FrameTable, fit_detector, photo_frames
from kennelgate.progress import progress_bar

sys.path.insert(0, str(Path(__file__).parent))
from corruption_suite import split  # noqa: E402 - the same split as the corruption report

cli = typer.Typer(add_completion=False)


def photo_sets(data: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(training photos, held-out test split, held-out breeds)."""
    gallery, test = split(data, None)
    breeds = sorted(p.path for s in ("cat", "dog") for p in scan_species(data / "breeds" / s, s))
    return [p.path for p in gallery] + breeds[::2], [p.path for p in test], breeds[1::2]


def _table(name: str, photos: list[Path], plan, seed: int, cache: Optional[Path]) -> FrameTable:
    path = cache / f"{name}.npz" if cache else None
    if path is not None and path.is_file():
        return FrameTable.load(path)
    with progress_bar(f"{name}: photos → frames", len(photos)) as advance:
        table = photo_frames(photos, plan, seed, on_progress=advance)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        table.save(path)
    return table


def measure(detector: FaultDetector, table: FrameTable) -> dict:
    """Per fault × severity: share stopped by that detector and by any; false alarms on clean frames."""
    scores = np.array([[detector.scores(x)[k] for k in detector.models] for x in table.features])
    limits = np.array([detector.models[k].threshold for k in detector.models])
    over = scores > limits
    out: dict = {"false_alarm": {}, "detection": {}}
    clean = table.source == CLEAN
    out["false_alarm"] = {
        "frames": int(clean.sum()), "any": float(over[clean].any(1).mean()),
        **{k: float(over[clean, i].mean()) for i, k in enumerate(detector.models)},
    }
    for i, fault in enumerate(detector.models):
        if not (table.label == fault).any():
            continue
        rows = {}
        for s in (1, 2, 3, 4, 5):
            sel = (table.label == fault) & (table.severity == s)
            rows[s] = {"own": float(over[sel, i].mean()), "any": float(over[sel].any(1).mean()), "frames": int(sel.sum())}
        hi = (table.label == fault) & (table.severity >= 3)
        out["detection"][fault] = {"severity": rows, "sev3_5_own": float(over[hi, i].mean()),
                                   "sev3_5_any": float(over[hi].any(1).mean()), "frames": int(hi.sum())}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faults = list(results["test"]["detection"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / len(faults)
    for j, fault in enumerate(faults):
        sev = results["test"]["detection"][fault]["severity"]
        xs = np.arange(1, 6) + (j - (len(faults) - 1) / 2) * width
        axes[0].bar(xs, [100 * sev[s]["own"] for s in range(1, 6)], width, label=f"{fault} ({', '.join(SOURCES[fault])})")
    axes[0].axhline(95, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="severity", ylabel="frames stopped (%)", ylim=(0, 102), title="Detection on held-out photos")
    axes[0].legend(loc="lower right", fontsize=8)
    names = ["test split", "breeds (held out)"]
    vals = [100 * results[k]["false_alarm"]["any"] for k in ("test", "breeds")]
    axes[1].bar(names, vals, color=["tab:gray", "tab:gray"])
    axes[1].axhline(1.0, color="r", ls="--", lw=0.8)
    axes[1].set(ylabel="clean frames stopped (%)", title="False alarms", ylim=(0, max(2.0, max(vals) * 1.3)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict, detector: FaultDetector, command: str) -> str:
    t, b = results["test"], results["breeds"]
    lines = [
        "# Health gate: learned fault detectors", "",
        f"Command: `{command}`", "",
        f"Trained on {detector.info['photos']} photos ({detector.info['frames']} frames: each photo, three benign "
        "variants of it, and mud / over-exposure / defocus and motion blur at severities 3-5). Thresholds set at "
        f"{100 * detector.info['false_alarm_target']:.2f}% false alarms per detector on out-of-fold clean photos. "
        f"Measured on photos never trained on: the corruption suite's test split ({t['false_alarm']['frames']} photos, "
        f"each clean and corrupted at severities 1-5 with new random draws) and half of breeds/ ({b['false_alarm']['frames']} clean photos).", "",
        "![detection and false alarms](health_gate.png)", "",
        "| fault | source | severity 1 | 2 | 3 | 4 | 5 | **3-5, this detector** | 3-5, any detector |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for fault, d in t["detection"].items():
        sev = d["severity"]
        lines.append(
            f"| {fault} | {', '.join(SOURCES[fault])} | " + " | ".join(f"{100 * sev[s]['own']:.1f}%" for s in range(1, 6))
            + f" | **{100 * d['sev3_5_own']:.1f}%** | {100 * d['sev3_5_any']:.1f}% |"
        )
    lines += [
        "", "False alarms on clean photos (a frame stopped by any detector; the rules for no signal and darkness come on top, "
        "see docs/corruptions.md):", "",
        "| clean set | photos | any detector | " + " | ".join(detector.models) + " |",
        "|---|---|---|" + "---|" * len(detector.models),
    ]
    for name, r in (("test split", t), ("breeds, held-out half", b)):
        fa = r["false_alarm"]
        lines.append(f"| {name} | {fa['frames']} | **{100 * fa['any']:.2f}%** | " + " | ".join(f"{100 * fa[k]:.2f}%" for k in detector.models) + " |")
    lines += ["", "Thresholds: " + ", ".join(f"{k} {m.threshold:.3f}" for k, m in detector.models.items()), ""]
    return "\n".join(lines)


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(PACKAGED, help="Where the trained detectors go."),
    docs: Path = typer.Option(Path("docs"), help="Where health_gate.md/.json/.png go."),
    false_alarm: float = typer.Option(0.0035, help="False-alarm rate per detector on out-of-fold clean photos."),
    cache: Optional[Path] = typer.Option(None, help="Keep the measured frames here and reuse them (tuning runs)."),
    seed: int = typer.Option(0, help="Corruption and fold seed."),
) -> None:
    """Train kennelgate/data/health_detector.json.gz and write docs/health_gate.md."""
    train, test, breeds = photo_sets(data)
    table = _table("train", train, TRAIN_PLAN, seed, cache)
    detector = fit_detector(table, false_alarm, seed=seed)
    detector.info["trained_on"] = "scripts/health_gate.py: suite gallery split + every second breeds/ photo"
    results = {
        "test": measure(detector, _table("test", test, EVAL_PLAN, seed + 1, cache)),
        "breeds": measure(detector, _table("breeds", breeds, [(CLEAN, CLEAN, 0)], seed + 2, cache)),
    }
    detector.save(out)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "health_gate.json").write_text(json.dumps({"thresholds": detector.thresholds, "info": detector.info,
                                                       "models": {k: m.info for k, m in detector.models.items()},
                                                       **results}, indent=2))
    plot(results, docs / "health_gate.png")
    (docs / "health_gate.md").write_text(report(results, detector, "python " + " ".join(sys.argv)))
    typer.echo(f"detectors: {out} ({out.stat().st_size / 1e3:.0f} kB); report: {docs / 'health_gate.md'}")


if __name__ == "__main__":
    cli()
