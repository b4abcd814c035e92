#!/usr/bin/env python3
"""Does the door admit photos of another origin? Gallery from one source, test from another,
through the product's own calibration and decider; and one candidate fix, a centred space.
Writes docs/cross_origin.md, .json and cross_origin.png.

Settings (cats and dogs; unknowns are the 198 ImageNet animals and objects of `others/` +
`others_objects/` and the 196 raccoons, never enrolled):
- ``catsdogs → breeds``: the gallery is `catsdogs/` (shelter snapshots), the test `breeds/`
  (another origin). This is the README's main job: its gallery is `catsdogs/` only.
- ``breeds → catsdogs``: the other way round.
- ``mixed``: both sources in the gallery, twin groups held out for the test (as docs/admit.md).
- ``mixed, grouped 5-fold``: the same, every twin group tested once (5 folds, pooled): the
  cross-validation docs/admit.md uses, so the candidates are judged on all photos, not one split.

Variants, each calibrated at several ``target_accept`` values with everything else at the
defaults (method, k, margin, twin grouping):
- ``raw``: today's embeddings.
- ``centred``: every vector minus the gallery's centre (the mean of its species' means), then
  re-normalised; ``half-centred``: minus half the centre. The encoder's features share a large common direction (any photo of an animal
  points along it); cosine after removing it weighs what tells the species apart. The centre is
  fixed when the gallery is built, so a species added later changes no other species' scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer

from embedder.batch import embed_sources
from index.folders import IMAGE_SUFFIXES, LabeledPhoto, scan_species
from index.gallery import Gallery, SpeciesPhotos
from index.scoring import twin_groups
from kennelgate.deciders import decider_from
from kennelgate.engine import Engine
from kennelgate.progress import progress_bar
from kennelgate.settings import Settings

cli = typer.Typer(add_completion=False)
KNOWN = ("cat", "dog")
TARGETS = (0.9, 0.95, 0.98)


def load(data: Path) -> tuple[list[LabeledPhoto], list[str]]:
    """Photos of the sources, with each photo's source folder."""
    photos, source = [], []
    for species in KNOWN:
        for src in ("catsdogs", "breeds"):
            found = scan_species(data / src / species, species)
            photos += found
            source += [src] * len(found)
    for src in ("others", "others_objects", "raccoon"):
        found = [LabeledPhoto(p, src) for p in sorted((data / src).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        photos += found
        source += [src] * len(found)
    return photos, source


def centred(x: np.ndarray, centre: np.ndarray, share: float = 1.0) -> np.ndarray:
    y = x - share * centre
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def measure(settings: Settings, x: np.ndarray, sp: np.ndarray, src: np.ndarray, gal: np.ndarray, test: np.ndarray) -> dict:
    """Right / swapped / unknowns in / raccoons in at each target, for one gallery and test."""
    gallery = Gallery(fingerprint="experiment", dim=x.shape[1])
    for species in KNOWN:
        rows = gal[sp[gal] == species]
        gallery.add(species, SpeciesPhotos(x[rows], [str(i) for i in rows], [None] * len(rows)))
    unknown = np.flatnonzero(np.isin(src, ["others", "others_objects"]))
    raccoon = np.flatnonzero(src == "raccoon")
    out = {}
    for target in TARGETS:
        decider = decider_from(settings.model_copy(update={"target_accept": target}), gallery)

        def accepted(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = decider.decide(x[rows])
            return np.array([a.accepted for a in d]), np.array([a.species for a in d])

        ok, said = accepted(test)
        unk, _ = accepted(unknown)
        rac, _ = accepted(raccoon)
        out[str(target)] = {
            "right": float(np.mean(ok & (said == sp[test]))), "swapped": float(np.mean(ok & (said != sp[test]))),
            "unknowns_in": float(unk.mean()), "raccoons_in": float(rac.mean()),
            "per_species": {s: float(np.mean((ok & (said == sp[test]))[sp[test] == s])) for s in KNOWN},
        }
    return out


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where cross_origin.md, .json and .png go."),
    test_share: float = typer.Option(0.2, help="Share of twin groups tested in the mixed setting."),
    folds: int = typer.Option(5, help="Folds of the grouped cross-validation setting."),
    seed: int = 0,
) -> None:
    """Cross-origin admission of the default decision, raw and centred, at several targets."""
    settings = Settings()
    engine = Engine(settings)
    photos, source = load(data)
    with progress_bar("embedding", len(photos)) as advance:
        res = embed_sources(engine.encoder, [p.path for p in photos], settings.batch_size, advance)
    x = res.vectors
    sp = np.array([photos[i].species for i in res.ok], dtype=object)
    src = np.array([source[i] for i in res.ok], dtype=object)
    known = np.flatnonzero(np.isin(sp, KNOWN))
    groups = twin_groups(x[known], settings.twin_cosine)
    held = np.random.default_rng(seed).random(groups.max() + 1) < test_share
    fold = np.random.default_rng(seed).integers(0, folds, groups.max() + 1)[groups]
    settings_rows = {  # name → its (gallery, test) splits
        "catsdogs → breeds": [(known[src[known] == "catsdogs"], known[src[known] == "breeds"])],
        "breeds → catsdogs": [(known[src[known] == "breeds"], known[src[known] == "catsdogs"])],
        "mixed (twin groups held out)": [(known[~held[groups]], known[held[groups]])],
        f"mixed, grouped {folds}-fold": [(known[fold != f], known[fold == f]) for f in range(folds)],
    }
    report: dict = {"command": "python " + " ".join(sys.argv), "model": settings.model, "settings": {}}
    with progress_bar("splits × variants", 3 * sum(len(v) for v in settings_rows.values())) as advance:
        for name, splits in settings_rows.items():
            per_variant: dict[str, list] = {}
            for gal, test in splits:
                centre = np.mean([x[gal][sp[gal] == s].mean(0) for s in KNOWN], axis=0)
                variants = (("raw", x), ("half-centred", centred(x, centre, 0.5)), ("centred", centred(x, centre)))
                for variant, vecs in variants:
                    per_variant.setdefault(variant, []).append((measure(settings, vecs, sp, src, gal, test), sp[test]))
                    advance(1)
            report["settings"][name] = {
                "gallery": int(np.mean([len(g) for g, _ in splits])), "test": int(sum(len(t) for _, t in splits)),
                "variants": {v: pooled(rows) for v, rows in per_variant.items()},
            }
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_origin.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "cross_origin.png")
    (out / "cross_origin.md").write_text(markdown(report, settings))
    print(markdown(report, settings))


def pooled(rows: list[tuple[dict, np.ndarray]]) -> dict:
    """Splits' rates → one: cats and dogs weighted by how many each split tested; the unknowns
    (the same photos in every split) averaged."""
    out = {}
    for target in rows[0][0]:
        n = np.array([len(t) for _, t in rows], float)
        per = {s: np.array([(t == s).sum() for _, t in rows], float) for s in KNOWN}
        get = lambda key: np.array([m[target][key] for m, _ in rows])  # noqa: E731
        out[target] = {
            "right": float(np.average(get("right"), weights=n)), "swapped": float(np.average(get("swapped"), weights=n)),
            "unknowns_in": float(get("unknowns_in").mean()), "raccoons_in": float(get("raccoons_in").mean()),
            "per_species": {s: float(np.average([m[target]["per_species"][s] for m, _ in rows], weights=per[s]))
                            for s in KNOWN},
        }
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["settings"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), sharey=True)
    for ax, name in zip(axes, names):
        for variant, style in (("raw", "o-"), ("half-centred", "^:"), ("centred", "s--")):
            rows = report["settings"][name]["variants"][variant]
            xs = [100 * (r["unknowns_in"] * 198 + r["raccoons_in"] * 196) / 394 for r in rows.values()]
            ys = [100 * r["right"] for r in rows.values()]
            ax.plot(xs, ys, style, label=variant)
            for t, xv, yv in zip(rows, xs, ys):
                ax.annotate(t, (xv, yv), textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax.set_title(name)
        ax.set_xlabel("unknowns + raccoons let in (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cats + dogs accepted as the right species (%)")
    axes[0].legend()
    fig.suptitle("Per frame, calibrated at target_accept 0.90 / 0.95 / 0.98")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict, settings: Settings) -> str:
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        "# Photos of another origin: does the threshold carry over?", "",
        f"Command: `{report['command']}` (model {report['model']}, method {settings.method}, k {settings.k}, "
        f"margin {settings.min_margin}; the product's calibration and decider, per frame, no health gate).", "",
        "![accepted vs let in](cross_origin.png)", "",
        "| setting | variant | target | right | cat | dog | swapped | unknowns in (198) | raccoons in (196) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["settings"].items():
        for variant, per in row["variants"].items():
            for target, r in per.items():
                default = " (default)" if float(target) == settings.target_accept else ""
                lines.append(
                    f"| {name} | {variant} | {target}{default} | {pct(r['right'])} | {pct(r['per_species']['cat'])} | "
                    f"{pct(r['per_species']['dog'])} | {pct(r['swapped'])} | {pct(r['unknowns_in'])} | {pct(r['raccoons_in'])} |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli()
