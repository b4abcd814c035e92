"""The corruption suite as a person reads it: heat-maps, a table per corruption, the gate's record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kennelgate.robustness import CLEAN, SuiteResult


def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if x != x else f"{100 * x:.{digits}f}%"


def _grid(result: SuiteResult, key: str) -> tuple[list[str], list[int], np.ndarray]:
    names = list(dict.fromkeys(c.corruption for c in result.conditions if c.corruption != CLEAN))
    sevs = sorted({c.severity for c in result.conditions if c.corruption != CLEAN})
    grid = np.full((len(names), len(sevs)), np.nan)
    for c in result.conditions:
        if c.corruption != CLEAN:
            grid[names.index(c.corruption), sevs.index(c.severity)] = getattr(c, key)
    return names, sevs, grid


def heatmaps(result: SuiteResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("accuracy", "cat/dog accuracy (model alone)", "RdYlGn", 0.5, 1.0),
        ("abstain_rate", "abstained (gate + rejection)", "Blues", 0.0, 1.0),
        ("wrong_accept_frame", "wrong accepts, per frame", "Reds", 0.0, 0.05),
        ("wrong_open_window", f"wrong door opens ({result.k} frames agree)", "Reds", 0.0, 0.005),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 6.2))
    for ax, (key, title, cmap, lo, hi) in zip(axes, panels):
        names, sevs, grid = _grid(result, key)
        ax.imshow(grid, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(sevs)), [str(s) for s in sevs])
        ax.set_xlabel("severity")
        ax.set_yticks(range(len(names)), names if ax is axes[0] else [""] * len(names))
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                v = grid[r, c]
                dark = (v - lo) / (hi - lo) > 0.6 if cmap != "RdYlGn" else v < 0.65
                ax.text(c, r, f"{100 * v:.1f}" if key != "wrong_open_window" else f"{100 * v:.2f}",
                        ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.suptitle("Corruption suite (values in %; the door's limit: wrong opens ≤ 0.5%)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_suite_report(result: SuiteResult, out_dir: Path, command: str = "") -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "corruptions.json").write_text(json.dumps(result.as_dict(), indent=2))
    png = heatmaps(result, out_dir / "corruptions_heatmap.png")
    clean = next(c for c in result.conditions if c.corruption == CLEAN)
    worst = max(result.conditions, key=lambda c: c.wrong_open_window)
    lines = [
        "# Corruption suite",
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"Gallery: {', '.join(f'{n} {v}' for n, v in result.gallery.items())} photos. "
        f"Test: {', '.join(f'{n} {v}' for n, v in result.test.items())} photos "
        "(species not in the gallery are unknowns: the right answer is `other`). "
        f"Each photo becomes one frame per corruption × severity; a wrong accept is followed by "
        f"{result.k - 1} more frames of the same scene and counts as a **wrong door open** only if "
        f"all {result.k} agree (the service's K-of-N window).",
        "",
        f"- Clean: accuracy {_pct(clean.accuracy)}, wrong accepts per frame {_pct(clean.wrong_accept_frame, 2)}, "
        f"wrong opens {_pct(clean.wrong_open_window, 2)}, gate false alarms {_pct(clean.gate_rate, 2)}.",
        f"- Worst condition for wrong opens: **{worst.corruption}{f' {worst.severity}' if worst.severity else ''}**: "
        f"{_pct(worst.wrong_open_window, 2)} "
        f"({worst.wrong_open_windows} of {worst.frames}).",
        "",
        f"![heat-map]({png.name})",
        "",
        "## Health gate",
        "",
        "| fault | frames | stopped by the gate | named as this fault | source |",
        "|---|---|---|---|---|",
    ]
    for fault, d in result.gate_detection.items():
        if fault == "clean_false_alarm":
            continue
        lines.append(f"| {fault} | {d['frames']} | {_pct(d['stopped'])} | {_pct(d['named_right'])} | {d['source']} |")
    fa = result.gate_detection["clean_false_alarm"]
    lines += [
        "",
        f"False alarms on clean frames: **{_pct(fa['rate'], 2)}** of {fa['frames']} ({fa['faults'] or 'none'}).",
        f"Frozen feed: {result.gate_detection['frozen'].get('detected_at_frame')} frames to detect; "
        f"live static scene flagged frozen {_pct(result.gate_detection['frozen']['live_false_alarm'], 2)}.",
        "",
        "Rules: `" + json.dumps(result.thresholds) + "` (null = the learned detector's own limit).",
        f"Learned detectors ({result.detector.get('file', '?')}; trained on {result.detector.get('trained_on') or 'a shelter’s photos'}, "
        "see [health_gate.md](health_gate.md)): limits `" + json.dumps(result.detector.get("limits", {})) + "`.",
        "",
        "## Every condition",
        "",
        "| corruption | severity | accuracy | right accepts | abstained | gate | wrong accepts/frame (no gate) | wrong accepts/frame | wrong opens | faults |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result.conditions:
        lines.append(
            f"| {c.corruption} | {c.severity or '-'} | {_pct(c.accuracy)} | {_pct(c.right_accept_rate)} | "
            f"{_pct(c.abstain_rate)} | {_pct(c.gate_rate)} | {_pct(c.wrong_accept_frame_nogate, 2)} | "
            f"{_pct(c.wrong_accept_frame, 2)} | {_pct(c.wrong_open_window, 2)} ({c.wrong_open_windows}) | "
            f"{', '.join(f'{k} {v}' for k, v in sorted(c.faults.items())) or '-'} |"
        )
    if result.wrong_opens:
        lines += ["", "## Wrong door opens", "", "| photo | truth | opened for | corruption | severity |", "|---|---|---|---|---|"]
        for w in result.wrong_opens:
            lines.append(f"| {w['id']} | {w['truth']} | {w['opened_for']} | {w['corruption']} | {w['severity'] or '-'} |")
    path = out_dir / "corruptions.md"
    path.write_text("\n".join(lines) + "\n")
    return path
