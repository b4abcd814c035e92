"""Human-readable evaluation report: summary markdown, confusion-matrix plot, worst errors."""

from __future__ import annotations

import json
from pathlib import Path

from index.evaluation import EvalResult


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def write_report(result: EvalResult, out_dir: Path, title: str = "KennelGate evaluation") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image, ImageDraw

    from embedder.images import ImageError, open_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result.summary(), indent=2))

    cm = np.array(result.confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * cm.shape[1], 1.0 + 0.7 * cm.shape[0]))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(cm.shape[1]), result.confusion_predicted, rotation=30, ha="right")
    ax.set_yticks(range(cm.shape[0]), result.confusion_labels)
    ax.set_xlabel("decision")
    ax.set_ylabel("truth")
    for r in range(cm.shape[0]):
        for c in range(cm.shape[1]):
            ax.text(c, r, f"{cm[r, c]}\n{100 * norm[r, c]:.1f}%", ha="center", va="center",
                    color="white" if norm[r, c] > 0.5 else "black", fontsize=8)
    ax.set_title("Confusion matrix (rows: truth)")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=120)
    plt.close(fig)

    # Worst errors as a thumbnail sheet with captions.
    thumbs = []
    for err in result.worst:
        try:
            img = open_image(err["id"]).copy()
            img.thumbnail((160, 160))
        except (ImageError, OSError):
            img = Image.new("RGB", (160, 160), (200, 200, 200))
        tile = Image.new("RGB", (170, 200), "white")
        tile.paste(img, ((170 - img.width) // 2, 2))
        d = ImageDraw.Draw(tile)
        d.text((4, 165), f"truth {err['truth']}", fill="black")
        d.text((4, 180), f"got {err['predicted']} ({err['best']} {err['score']:.2f})", fill="red")
        thumbs.append(tile)
    if thumbs:
        cols = 4
        sheet = Image.new("RGB", (170 * cols, 200 * ((len(thumbs) + cols - 1) // cols)), "white")
        for i, t in enumerate(thumbs):
            sheet.paste(t, ((i % cols) * 170, (i // cols) * 200))
        sheet.save(out_dir / "worst_errors.png")

    lines = [
        f"# {title}",
        "",
        f"- known photos: {result.n_known}, unknown photos: {result.n_unknown}",
        f"- closed-set accuracy (best species right): **{_pct(result.accuracy)}**",
        f"- known photos accepted: {_pct(result.known_accept_rate)}; accepted as the wrong species: {_pct(result.wrong_accept_rate)}",
        f"- unknown photos rejected: **{_pct(result.unknown_reject_rate)}** (accepted as a kennel species: {_pct(result.unknown_accept_rate)})",
        f"- open-set AUROC (known vs unknown): {result.auroc:.4f}" if result.auroc is not None else "- open-set AUROC: n/a",
        "",
        "| species | photos | precision | recall | closed-set accuracy |",
        "|---|---|---|---|---|",
    ]
    for s, m in result.per_species.items():
        lines.append(f"| {s} | {m['photos']} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['closed_set_accuracy'])} |")
    lines += ["", "![confusion matrix](confusion.png)", ""]
    if thumbs:
        lines += ["## Worst errors", "", "![worst errors](worst_errors.png)", ""]
        lines += [f"- `{e['id']}`: truth {e['truth']}, decided {e['predicted']} — {e['reason']}" for e in result.worst]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
