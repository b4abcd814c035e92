"""Error analysis for ``kennelgate eval --report``: where the errors are, and which are the test
set's own fault.

- groups: errors by (truth, decision) pair — a cat kept out (``cat → other``), a dog let into the
  cat kennel (``dog → cat``), an unknown let in (``unknown → dog``) — each with a sample grid;
- conditions: the error rate by brightness, size and sharpness of the photo, each split into
  thirds of the test set, so "most errors are dark photos" shows as a bar, not a hunch;
- suspected mislabels among the test photos: an error whose photo the gallery would file, with
  the audit's confident-learning evidence, under another species (a test label to check before
  blaming the model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from embedder.images import ImageError, open_image
from index.decision import Decision
from index.folders import OTHER
from index.gallery import Gallery
from index.scoring import twin_groups
from kennelgate.audit import label_probabilities, probabilities_against

UNKNOWN = "unknown"
CONDITIONS = ("brightness", "size", "sharpness")
GRID_MAX = 12  # photos shown per error group
THUMB = 150


@dataclass
class ErrorGroup:
    truth: str
    decided: str  # the species the door accepted, or "other"
    kind: str  # "kept out" (a right animal rejected), "swapped" (wrong species), "let in" (an unknown accepted)
    photos: list[dict]  # id, best, score, reason
    share: float  # of the test photos with this truth

    @property
    def name(self) -> str:
        return f"{self.truth}_as_{self.decided}"


@dataclass
class ConditionBucket:
    condition: str
    bucket: str  # "low" / "mid" / "high" third of the test set
    low: float
    high: float
    photos: int
    errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.photos if self.photos else float("nan")


@dataclass
class ErrorAnalysis:
    errors: int
    photos: int
    groups: list[ErrorGroup] = field(default_factory=list)
    conditions: list[ConditionBucket] = field(default_factory=list)
    mislabels: list[dict] = field(default_factory=list)  # id, filed, suggested, evidence

    def as_dict(self) -> dict:
        return {
            "errors": self.errors, "photos": self.photos,
            "groups": [{**asdict(g), "photos": g.photos[:GRID_MAX], "count": len(g.photos)} for g in self.groups],
            "conditions": [{**asdict(c), "error_rate": c.error_rate} for c in self.conditions],
            "mislabels": self.mislabels,
        }


def photo_conditions(image: Image.Image, width: int, height: int) -> dict[str, float]:
    """Mean brightness (0-255), short side in pixels, and sharpness (variance of the Laplacian of
    a 256-px greyscale copy: low = blurry)."""
    grey = image.convert("L")
    grey.thumbnail((256, 256))
    lap = np.asarray(grey.filter(ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), 1, 128)), np.float32) - 128
    return {"brightness": float(np.asarray(grey, np.float32).mean()), "size": float(min(width, height)),
            "sharpness": float(lap.var())}


def read_conditions(paths: Sequence[str]) -> list[Optional[dict[str, float]]]:
    out: list[Optional[dict[str, float]]] = []
    for p in paths:
        try:
            img = open_image(p)
        except (ImageError, OSError):
            out.append(None)
            continue
        out.append(photo_conditions(img, img.width, img.height))
    return out


def is_error(truth: str, decision: Decision, known: set[str]) -> bool:
    if truth in known:
        return not (decision.accepted and decision.species == truth)
    return decision.accepted


def analyse(
    truths: Sequence[str],
    decisions: Sequence[Decision],
    ids: Sequence[str],
    gallery: Gallery,
    embed: Callable[[list[str]], np.ndarray],
    conditions: Optional[Sequence[Optional[dict[str, float]]]] = None,
    twin_cosine: float = 0.9,
) -> ErrorAnalysis:
    """Group the errors of one evaluation; ``embed`` turns photo paths into unit vectors (only the
    wrongly-decided known photos are embedded, for the mislabel evidence)."""
    known = set(gallery.names(include_other=False))
    truth = [t if t in known else UNKNOWN for t in truths]
    wrong = [is_error(t, d, known) for t, d in zip(truth, decisions)]
    result = ErrorAnalysis(errors=int(sum(wrong)), photos=len(truth))
    per_truth = {t: truth.count(t) for t in set(truth)}
    grouped: dict[tuple[str, str], list[dict]] = {}
    for i, (t, d) in enumerate(zip(truth, decisions)):
        if wrong[i]:
            decided = d.species if d.accepted else OTHER
            grouped.setdefault((t, decided), []).append(
                {"id": ids[i], "best": d.best, "score": round(float(d.score), 4), "reason": d.reason})
    for (t, decided), photos in grouped.items():
        kind = "let in" if t == UNKNOWN else ("kept out" if decided == OTHER else "swapped")
        photos.sort(key=lambda p: -p["score"])
        result.groups.append(ErrorGroup(t, decided, kind, photos, len(photos) / per_truth[t]))
    # The costliest first: wrong species and unknowns let in open a door; then the biggest.
    result.groups.sort(key=lambda g: (g.kind == "kept out", -len(g.photos)))

    if conditions is not None:
        result.conditions = condition_buckets(conditions, wrong)
    result.mislabels = suspected_mislabels(truth, wrong, ids, gallery, embed, twin_cosine)
    return result


def condition_buckets(conditions: Sequence[Optional[dict[str, float]]], wrong: Sequence[bool]) -> list[ConditionBucket]:
    """Error rate in each third (by value) of the photos, for each condition."""
    ok = [i for i, c in enumerate(conditions) if c is not None]
    out = []
    if len(ok) < 3:
        return out
    err = np.array([wrong[i] for i in ok])
    for name in CONDITIONS:
        values = np.array([conditions[i][name] for i in ok])
        cuts = np.quantile(values, [1 / 3, 2 / 3])
        which = np.searchsorted(cuts, values, side="right")
        for b, label in enumerate(("low", "mid", "high")):
            m = which == b
            if m.any():
                out.append(ConditionBucket(name, label, float(values[m].min()), float(values[m].max()),
                                           int(m.sum()), int(err[m].sum())))
    return out


def suspected_mislabels(
    truth: Sequence[str], wrong: Sequence[bool], ids: Sequence[str], gallery: Gallery,
    embed: Callable[[list[str]], np.ndarray], twin_cosine: float,
) -> list[dict]:
    """Wrongly-decided known test photos that the gallery, by confident learning, would file under
    another species: the species' confidence thresholds come from the gallery's own photos
    (each scored without its twin group), the test photo's probabilities from its nearest
    gallery photos."""
    names = gallery.names(include_other=False)
    rows = [i for i, (t, w) in enumerate(zip(truth, wrong)) if w and t in names]
    if len(names) < 2 or not rows:
        return []
    gvec = np.concatenate([gallery.species[n].vectors for n in names])
    glab = np.concatenate([[n] * len(gallery.species[n]) for n in names])
    own = label_probabilities(gvec, glab, twin_groups(gvec, twin_cosine), names)
    col = {n: j for j, n in enumerate(names)}
    confident = np.array([own[glab == n, col[n]].mean() for n in names])
    p = probabilities_against(embed([ids[i] for i in rows]), gvec, glab, names)
    out = []
    for r, i in enumerate(rows):
        filed = col[truth[i]]
        if p[r, filed] >= confident[filed]:
            continue
        j = int(np.argmax(np.where(np.arange(len(names)) == filed, -1, p[r])))
        if p[r, j] >= confident[j]:
            out.append({"id": ids[i], "filed": truth[i], "suggested": names[j],
                        "evidence": round(float(p[r, j] - p[r, filed]), 3)})
    return sorted(out, key=lambda m: -m["evidence"])


# --- report ----------------------------------------------------------------------------------
def _tile(path: str, caption: list[tuple[str, str]]) -> Image.Image:
    try:
        img = open_image(path).copy()
        img.thumbnail((THUMB, THUMB))
    except (ImageError, OSError):
        img = Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
    tile = Image.new("RGB", (THUMB + 10, THUMB + 16 * len(caption) + 6), "white")
    tile.paste(img, ((THUMB + 10 - img.width) // 2, 2))
    d = ImageDraw.Draw(tile)
    for k, (text, colour) in enumerate(caption):
        d.text((4, THUMB + 5 + 16 * k), text[:26], fill=colour)
    return tile


def _why(photo: dict) -> str:
    return f"best {photo['best']} {photo['score']:.2f}" if photo["best"] else photo["reason"] or "no answer"


def _sheet(tiles: list[Image.Image], path: Path, cols: int = 6) -> None:
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * min(cols, len(tiles)), h * ((len(tiles) + cols - 1) // cols)), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h))
    sheet.save(path)


def _plot_conditions(buckets: list[ConditionBucket], overall: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CONDITIONS), figsize=(3.2 * len(CONDITIONS), 3), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), CONDITIONS):
        rows = [b for b in buckets if b.condition == name]
        ax.bar([f"{b.bucket}\n{b.low:.0f}–{b.high:.0f}" for b in rows], [100 * b.error_rate for b in rows],
               color=["#c44" if b.error_rate > 1.5 * overall else "#78a" for b in rows])
        ax.axhline(100 * overall, color="grey", ls=":", lw=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].set_ylabel("errors (% of photos)")
    fig.suptitle("Error rate by photo condition (thirds of the test set; dotted: overall)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_section(analysis: ErrorAnalysis, out_dir: Path) -> list[str]:
    """Write the grids and the plot under ``out_dir/errors`` and return the report's markdown."""
    folder = out_dir / "errors"
    folder.mkdir(parents=True, exist_ok=True)
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = ["## Error analysis", "",
             f"{analysis.errors} errors in {analysis.photos} test photos ({pct(analysis.errors / max(analysis.photos, 1))}). "
             "An error: a known animal not accepted as itself, or an unknown accepted.", "",
             "| truth | decided | kind | photos | share of that truth | sample |", "|---|---|---|---|---|---|"]
    for g in analysis.groups:
        lines.append(f"| {g.truth} | {g.decided} | {g.kind} | {len(g.photos)} | {pct(g.share)} | [grid](errors/{g.name}.png) |")
        _sheet([_tile(p["id"], [(Path(p["id"]).name, "black"), (_why(p), "red")])
                for p in g.photos[:GRID_MAX]], folder / f"{g.name}.png")
    for g in analysis.groups:
        lines += ["", f"### {g.truth} → {g.decided} ({g.kind}, {len(g.photos)})", "", f"![{g.name}](errors/{g.name}.png)"]
    if analysis.conditions:
        overall = analysis.errors / max(analysis.photos, 1)
        _plot_conditions(analysis.conditions, overall, folder / "conditions.png")
        lines += ["", "### By condition", "", "![error rate by condition](errors/conditions.png)", "",
                  "| condition | third | range | photos | errors | error rate |", "|---|---|---|---|---|---|"]
        for b in analysis.conditions:
            flag = " **(high)**" if b.error_rate > 1.5 * overall else ""
            lines.append(f"| {b.condition} | {b.bucket} | {b.low:.0f}–{b.high:.0f} | {b.photos} | {b.errors} | "
                         f"{pct(b.error_rate)}{flag} |")
        lines += ["", "brightness: mean grey level 0-255; size: short side in pixels; sharpness: variance of the "
                  "Laplacian (low = blurry)."]
    lines += ["", "### Suspected mislabels among the test photos", ""]
    if analysis.mislabels:
        lines += ["Errors the gallery would file under another species (confident learning against the gallery): "
                  "check these labels before blaming the model (`kennelgate data audit` lists the same for a whole tree).", ""]
        lines += [f"- [`{Path(m['id']).name}`]({Path(m['id']).absolute().as_uri()}): filed under {m['filed']}, looks like "
                  f"{m['suggested']} (evidence {m['evidence']:.2f})" for m in analysis.mislabels]
        _sheet([_tile(m["id"], [(f"filed {m['filed']}", "black"), (f"looks {m['suggested']}", "red")])
                for m in analysis.mislabels[:GRID_MAX * 2]], folder / "mislabels.png")
        lines += ["", "![suspected mislabels](errors/mislabels.png)"]
    else:
        lines.append("None: no wrongly-decided test photo looks, to the gallery, more like another species than its own.")
    return lines
