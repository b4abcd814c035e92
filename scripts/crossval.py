#!/usr/bin/env python3
"""5-fold cross-validation of the default model on ../shared/datasets; writes docs/results.md.

Gallery = 4 folds of catsdogs/{cat,dog}; test = the 5th fold, plus others/ + others_objects/
as unknowns (never in the gallery). Then raccoon/ is added (half gallery, half test) to measure
learning a new species and forgetting. Breed accuracy is leave-one-out on breeds/.
Every photo is embedded once (cached per model fingerprint); all decisions use the library's
own Gallery / calibrate / Decider / evaluate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer

from embedder.registry import DEFAULT_MODEL

from index.evaluation import evaluate
from index.folders import LabeledPhoto, scan_species
from index.gallery import Gallery, SpeciesPhotos
from kennelgate.deciders import calibrate_from, decider_from
from kennelgate.engine import Engine
from kennelgate.progress import progress_bar
from kennelgate.settings import Settings

cli = typer.Typer(add_completion=False)


def embed_cached(engine: Engine, photos: list[LabeledPhoto], cache: Path) -> tuple[list[LabeledPhoto], np.ndarray]:
    key = cache / f"embeddings-{engine.encoder.fingerprint}.npz"
    known: dict[str, np.ndarray] = {}
    if key.exists():
        data = np.load(key)
        known = dict(zip(data["paths"].tolist(), data["vectors"]))
    todo = [p for p in photos if str(p.path) not in known]
    if todo:
        with progress_bar("embedding", len(todo)) as advance:
            kept, vectors, rejected = engine.embed_photos(todo, advance)
        known.update({str(p.path): v for p, v in zip(kept, vectors)})
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(key, paths=np.array(list(known)), vectors=np.stack(list(known.values())))
    kept = [p for p in photos if str(p.path) in known]
    return kept, np.stack([known[str(p.path)] for p in kept]) if kept else np.zeros((0, engine.encoder.dim))


def make_gallery(engine: Engine, groups: dict[str, tuple[np.ndarray, list[LabeledPhoto]]]) -> Gallery:
    g = Gallery(engine.encoder.fingerprint, engine.encoder.dim, engine.encoder.spec.name)
    for name, (vecs, photos) in groups.items():
        g.add(name, SpeciesPhotos(vecs, [str(p.path) for p in photos], [p.breed for p in photos]))
    return g


def _command(settings: Settings) -> str:
    env = "" if settings.model == DEFAULT_MODEL else f"KENNELGATE_MODEL={settings.model} "
    return env + "python " + " ".join(sys.argv)


def measure(engine: Engine, data: Path, cache: Path, folds: int = 5, seed: int = 0) -> tuple[dict, dict]:
    """Run every experiment; returns ``(summary, score_dump)``."""
    settings = engine.settings
    cats = scan_species(data / "catsdogs" / "cat", "cat")
    dogs = scan_species(data / "catsdogs" / "dog", "dog")
    unknown = scan_species(data / "others", "unknown") + scan_species(data / "others_objects", "unknown")
    raccoons = scan_species(data / "raccoon", "raccoon")
    breeds = scan_species(data / "breeds" / "cat", "cat") + scan_species(data / "breeds" / "dog", "dog")
    kept, vecs = embed_cached(engine, cats + dogs + unknown + raccoons + breeds, cache)
    by = lambda s: [i for i, p in enumerate(kept) if p.species == s and "/breeds/" not in str(p.path)]  # noqa: E731
    known_idx = np.array(by("cat") + by("dog"))
    unk_idx = np.array(by("unknown"))
    rac_idx = np.array(by("raccoon"))
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(known_idx)) % folds
    rac_half = rng.permutation(len(rac_idx)) % 2  # 0 → gallery, 1 → test

    results: dict[str, list] = {}
    score_dump = {"known": [], "unknown": [], "thr": []}
    for f in range(folds):
        g_idx, t_idx = known_idx[fold_of != f], known_idx[fold_of == f]
        groups = {s: (vecs[[i for i in g_idx if kept[i].species == s]], [kept[i] for i in g_idx if kept[i].species == s]) for s in ("cat", "dog")}
        gallery = make_gallery(engine, groups)
        cal = calibrate_from(settings, gallery)
        test_idx = np.concatenate([t_idx, unk_idx])
        truths = [kept[i].species for i in test_idx]
        for method in ("knn", "prototype"):
            for amb in (False, True):
                if method == "prototype" and amb:
                    continue
                dec = decider_from(settings.model_copy(update={"method": method, "reject_ambiguous": amb}), gallery, cal).decide(vecs[test_idx])
                r = evaluate(truths, dec, gallery.names(), ids=[str(kept[i].path) for i in test_idx])
                results.setdefault(f"{method}{' +ambiguity rule' if amb else ''}", []).append(r)
                if method == "knn" and not amb:
                    base_dec = dec
                    for d, t in zip(dec, truths):
                        score_dump["known" if t != "unknown" else "unknown"].append(d.score)
                    score_dump["thr"].append(cal.thresholds("knn"))
        # New species: index half the raccoons; old species' calibration is reused untouched.
        r_g = rac_idx[rac_half == 0]
        gallery.add("raccoon", SpeciesPhotos(vecs[r_g], [str(kept[i].path) for i in r_g], [None] * len(r_g)))
        cal2 = calibrate_from(settings, gallery, previous=cal, changed={"raccoon"})
        r_t = rac_idx[rac_half == 1]
        test2 = np.concatenate([t_idx, unk_idx, r_t])
        dec2 = decider_from(settings.model_copy(update={"method": "knn"}), gallery, cal2).decide(vecs[test2])
        n_old = len(t_idx)
        changed = np.mean([(a.species, a.accepted) != (b.species, b.accepted) for a, b in zip(base_dec[:n_old], dec2[:n_old])])
        rac_dec = dec2[len(t_idx) + len(unk_idx):]
        results.setdefault("raccoon", []).append(
            {
                "raccoon_accuracy": float(np.mean([d.accepted and d.species == "raccoon" for d in rac_dec])),
                "raccoon_closed_set": float(np.mean([d.best == "raccoon" for d in rac_dec])),
                "catdog_changed": float(changed),
                "unknown_reject": float(np.mean([not d.accepted for d in dec2[n_old:n_old + len(unk_idx)]])),
            }
        )

    # Breeds: leave-one-out breed prototype vs 1-NN within each species (breeds/ folder).
    breed_rows = {}
    for species in ("cat", "dog"):
        idx = [i for i, p in enumerate(kept) if p.species == species and "/breeds/" in str(p.path)]
        x = vecs[idx]
        labels = np.array([kept[i].breed for i in idx])
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        nn1 = float(np.mean(labels[sims.argmax(1)] == labels))
        proto_hits = []
        sums = {b: x[labels == b].sum(0) for b in set(labels)}
        counts = {b: int((labels == b).sum()) for b in set(labels)}
        names = sorted(sums)
        for j in range(len(x)):
            protos = []
            for b in names:
                s, n = sums[b], counts[b]
                if b == labels[j]:
                    s, n = s - x[j], n - 1
                protos.append(s / max(np.linalg.norm(s), 1e-12) if n > 0 else np.zeros_like(s))
            proto_hits.append(names[int(np.argmax(np.stack(protos) @ x[j]))] == labels[j])
        breed_rows[species] = {"photos": len(idx), "breeds": len(names), "prototype": float(np.mean(proto_hits)), "1-nn": nn1}

    def mean(rs, attr):
        vals = [getattr(r, attr) for r in rs]
        return float(np.mean(vals)), float(np.std(vals))

    summary = {"folds": folds, "k": settings.k, "target_accept": settings.target_accept, "methods": {}, "raccoon": {}, "breeds": breed_rows}
    for name, rs in results.items():
        if name == "raccoon":
            summary["raccoon"] = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
            continue
        summary["methods"][name] = {a: mean(rs, a) for a in ("accuracy", "known_accept_rate", "wrong_accept_rate", "unknown_reject_rate", "auroc")}
    return summary, score_dump


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where results.md and plots go."),
    cache: Path = typer.Option(Path("reports/cache"), help="Embedding cache."),
    folds: int = 5,
    seed: int = 0,
) -> None:
    """Measure accuracy, open-set rejection, new-species learning and forgetting."""
    settings = Settings()
    summary, score_dump = measure(Engine(settings), data, cache, folds, seed)
    breed_rows = summary["breeds"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(score_dump["known"], bins=60, alpha=0.6, density=True, label="cats + dogs (test folds)")
    ax.hist(score_dump["unknown"], bins=30, alpha=0.6, density=True, label="other animals + objects")
    for s, c in (("cat", "C2"), ("dog", "C3")):
        ax.axvline(np.mean([t[s] for t in score_dump["thr"]]), color=c, ls="--", label=f"{s} threshold (mean)")
    ax.set_xlabel("kNN score (mean cosine of the k nearest gallery photos)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "score_distribution.png", dpi=110)
    plt.close(fig)

    pct = lambda v: f"{100 * v[0]:.2f}% ± {100 * v[1]:.2f}"  # noqa: E731
    lines = [
        f"# Measured results (model: {settings.model}, providers: {settings.providers})",
        "",
        f"Command: `{_command(settings)}` ({folds}-fold CV, seed {seed}, k={settings.k}, "
        f"target_accept={settings.target_accept}). Gallery: 4 folds of `catsdogs/` (1600 photos); "
        "test: the 5th fold (400) + `others/` and `others_objects/` (198 unknowns, never in the gallery). "
        "Thresholds are calibrated from the gallery alone (held out by twin group, with the rival margin). Mean ± std over folds.",
        "",
        "| method | cat/dog accuracy | cats+dogs accepted | accepted as wrong species | unknowns rejected | AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in summary["methods"].items():
        lines.append(
            f"| {name} | {pct(m['accuracy'])} | {pct(m['known_accept_rate'])} | {pct(m['wrong_accept_rate'])} | "
            f"{pct(m['unknown_reject_rate'])} | {m['auroc'][0]:.4f} |"
        )
    rac = summary["raccoon"]
    lines += [
        "",
        "![score distribution](score_distribution.png)",
        "",
        "## New species without retraining: raccoon",
        "",
        "Half of `raccoon/` (98 photos) indexed into each fold's gallery, the other half tested.",
        "",
        f"- raccoons accepted as raccoon: **{100 * rac['raccoon_accuracy']:.1f}%** (best match raccoon: {100 * rac['raccoon_closed_set']:.1f}%)",
        f"- cat/dog test decisions that changed after adding raccoon: **{100 * rac['catdog_changed']:.2f}%**",
        f"- unknowns still rejected: {100 * rac['unknown_reject']:.1f}%",
        "",
        "## Breeds (leave-one-out on `breeds/`)",
        "",
        "| species | photos | breeds | breed prototype | 1-NN |",
        "|---|---|---|---|---|",
    ]
    for s, b in breed_rows.items():
        lines.append(f"| {s} | {b['photos']} | {b['breeds']} | {100 * b['prototype']:.1f}% | {100 * b['1-nn']:.1f}% |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cli()
