"""The tuning study as a page: the Pareto front as a plot, the front and today's defaults as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence


def label(r: dict) -> str:
    p = r["params"]
    return (f"{p['model']} / {p['providers']}, k={p['k']}, target {p['target_accept']:.3f}, "
            f"{p['window_k']} of {p['window_n']}")


def within(frames: int) -> str:
    return f"within {frames} frames ({frames / 20:g} s)"


def plot(rows: Sequence[dict], front: Sequence[dict], default: Optional[dict], max_wrong: float, frames: int,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    bad = [r for r in rows if r["wrong_open"] > max_wrong]
    ok = [r for r in rows if r["wrong_open"] <= max_wrong]
    ax.scatter([r["latency_ms"] for r in bad], [100 * r["admitted"] for r in bad], s=14, c="#bbb", marker="x",
               label=f"too many wrong opens (> {100 * max_wrong:.1f}%)")
    ax.scatter([r["latency_ms"] for r in ok], [100 * r["admitted"] for r in ok], s=16, c="#78a", label="feasible trials")
    f = sorted(front, key=lambda r: r["latency_ms"])
    ax.plot([r["latency_ms"] for r in f], [100 * r["admitted"] for r in f], "o-", c="#c44", ms=6, label="Pareto front")
    if default is not None:
        ax.scatter([default["latency_ms"]], [100 * default["admitted"]], s=160, marker="*", c="gold",
                   edgecolors="black", zorder=5, label="today's defaults")
    ax.set_xlabel("latency on this device: one live frame through the pipeline (ms, median)")
    ax.set_ylabel(f"right animals admitted {within(frames)} (% of visits)")
    ax.set_title("kennelgate tune: availability vs latency (safety is a constraint)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: dict, out: Path) -> Path:
    """``tune.json``, ``pareto.png`` and ``tune.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.json").write_text(json.dumps(report, indent=2))
    plot(report["trials"], report["front"], report.get("default"), report["max_wrong"], report["frames"],
         out / "pareto.png")
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    lines = [
        "# Tuning on this device",
        "",
        f"Command: `{report['command']}`. {report['n_trials']} trials in {report['minutes']:.1f} min "
        f"(study `{report['study']}`, resumable). Visits: {report['known_visits']} right-animal and "
        f"{report['unknown_visits']} unknown visits of {report['frames']} live frames through the service's "
        f"pipeline and door window; gallery: {report['gallery_photos']} photos (twin groups never on both sides). "
        f"Latency: median of {report['latency_frames']} single frames through the pipeline on this machine "
        f"({report['machine']}). Constraint: wrong opens ≤ {pct(report['max_wrong'])} of visits ({report['limit_from']}).",
        "",
        "![Pareto front](pareto.png)",
        "",
        "| | model / runtime, k, threshold target, window | admitted " + within(report["frames"])
        + " | wrong opens (known / unknown) | frames right | latency | held-out visits: admitted, wrong opens |",
        "|---|---|---|---|---|---|---|",
    ]
    d = report.get("default")
    on_front = d is not None and any(r["number"] == d["number"] for r in report["front"])
    rows = ([("today's defaults", d)] if d is not None and not on_front else []) + [
        (f"front #{r['number']}" + (" = today's defaults" if d is not None and r["number"] == d["number"] else ""), r)
        for r in report["front"]]
    for name, r in rows:
        lines.append(f"| {name} | {label(r)} | {pct(r['admitted'])} | {pct(r['wrong_open_known'])} / "
                     f"{pct(r['wrong_open_unknown'])} | {pct(r['frame_right'])} | {r['latency_ms']:.1f} ms | "
                     + (f"{pct(r['confirm']['admitted'])}, {pct(r['confirm']['wrong_open'])} |" if "confirm" in r else "— |"))
    lines += ["", report["verdict"], ""]
    if report.get("confirm_known_visits"):
        lines += [f"Held-out visits: {report['confirm_known_visits']} other right-animal photos of the test groups "
                  f"(never scored during the search) and the same {report['unknown_visits']} unknowns with other "
                  "frames: the front's figures there are the ones to expect, not the search's best.", ""]
    if report.get("chosen"):
        lines += [f"`--apply` (best admitted within {report['max_ms']:g} ms) writes: "
                  + ", ".join(f"`{k}={round(v, 4) if isinstance(v, float) else v}`"
                            for k, v in report["chosen"]["params"].items()), ""]
    path = out / "tune.md"
    path.write_text("\n".join(lines) + "\n")
    return path
