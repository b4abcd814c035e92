#!/usr/bin/env python3
"""Candidate open-set scores on the same grouped folds as ``scripts/admit.py``, thresholds swept
(not calibrated): how many cats and dogs each keeps when a given share of unknowns gets in.
Writes docs/score_candidates.md and .json.

Unknowns: the 198 ImageNet animals and objects of `others/` + `others_objects/`, and the 196
raccoons (near look-alikes, never enrolled). For each score: cats + dogs kept (right species)
at 0.5 / 1 / 2% of ImageNet unknowns let in (and the raccoons let in there), and at 1 / 2 / 5%
of raccoons let in. Scores: kNN (k = 1, 5, 10), class-conditional Mahalanobis with a shared
covariance (plain and relative to a background Gaussian), kNN over [embedding, √ImageNet
probabilities], an ImageNet-head footprint gate, and the shipped ``contrast`` (kNN minus
w × kNN to photos filed under `other`) with the gallery folds' unknowns and/or half the
raccoons filed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import typer

from admit import admission_photos  # scripts/ is on the path when run as `python scripts/…`
from embedder.batch import embed_sources
from index.folders import OTHER
from index.scoring import twin_groups
from kennelgate.engine import Engine
from kennelgate.progress import progress_bar
from kennelgate.settings import Settings

cli = typer.Typer(add_completion=False)
KNOWN = ("cat", "dog")
Score = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (gallery idx, query idx) → (score, species)


def knn(g: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(np.ascontiguousarray(g))
    sims, _ = index.search(np.ascontiguousarray(q), min(k, len(g)))
    return sims.mean(1)


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where score_candidates.md and .json go."),
    folds: int = 5,
    seed: int = 0,
) -> None:
    """Threshold-free comparison of open-set scores on grouped folds."""
    settings = Settings()
    engine = Engine(settings)
    photos = admission_photos(data)  # the same photos, in the same order, as scripts/admit.py
    with progress_bar("embedding", len(photos)) as advance:
        res = embed_sources(engine.encoder, [p.path for p in photos], settings.batch_size, advance)
    photos = [photos[i] for i in res.ok]
    x, logits = res.vectors, res.logits
    sp = np.array([p.species for p in photos], dtype=object)
    groups = twin_groups(x, settings.twin_cosine)
    fold_of_group = np.random.default_rng(seed).integers(0, folds, groups.max() + 1)
    fold = fold_of_group[groups]
    k_idx, u_idx, r_idx = (np.flatnonzero(sp == s) for s in ("cat", OTHER, "raccoon"))
    k_idx = np.flatnonzero(np.isin(sp, KNOWN))
    r_filed = r_idx[fold_of_group[groups[r_idx]] % 2 == 0]
    r_test = np.setdiff1d(r_idx, r_filed)
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)

    def knn_score(vecs: np.ndarray, k: int = 5, filed: Callable[[int], np.ndarray] | None = None, w: float = 0.5):
        def score(g, q, f):
            s = np.stack([knn(vecs[g][sp[g] == c], vecs[q], k) for c in KNOWN], 1)
            best = s.max(1)
            if filed is not None:
                o = knn(vecs[filed(f)], vecs[q], k)
                best = np.where(o >= best, -1.0, best - w * o)  # closer to 'other': refused
            return best, np.array(KNOWN)[s.argmax(1)]
        return score

    def mahalanobis(relative: bool, shrink: float = 0.2):
        def cov(r):
            c = np.cov(r.T)
            return np.linalg.inv((1 - shrink) * c + shrink * np.trace(c) / len(c) * np.eye(len(c)))

        def score(g, q, f):
            xg = x[g]
            mus = np.stack([xg[sp[g] == c].mean(0) for c in KNOWN])
            ci = cov(xg - mus[(sp[g] == "dog").astype(int)])
            d = np.stack([np.einsum("ij,jk,ik->i", x[q] - m, ci, x[q] - m) for m in mus], 1)
            if relative:
                m0 = xg.mean(0)
                d = d - np.einsum("ij,jk,ik->i", x[q] - m0, cov(xg - m0), x[q] - m0)[:, None]
            return -d.min(1), np.array(KNOWN)[d.argmin(1)]
        return score

    def footprint(mass: float):
        def score(g, q, f):
            s = np.stack([knn(x[g][sp[g] == c], x[q], 5) for c in KNOWN], 1)
            pred = s.argmax(1)
            fp = []
            for c in KNOWN:  # the ImageNet classes that are top-1 for ≥ 0.2% of the species' photos
                share = np.bincount(logits[g][sp[g] == c].argmax(1), minlength=logits.shape[1]) / (sp[g] == c).sum()
                fp.append(np.flatnonzero(share >= 0.002))
            m = np.array([prob[i][fp[p]].sum() for i, p in zip(q, pred)])
            return np.where(m >= mass, s.max(1), -1.0), np.array(KNOWN)[pred]
        return score

    hybrid = np.concatenate([np.sqrt(0.7) * x, np.sqrt(0.3) * np.sqrt(prob)], 1).astype(np.float32)
    unknown_filed = lambda f: u_idx[fold[u_idx] != f]  # noqa: E731
    candidates: dict[str, tuple[Score, bool]] = {  # name → (score, whether the test unknowns are the held-out fold's)
        "kNN k=5 (knn)": (knn_score(x), False),
        "kNN k=1": (knn_score(x, 1), False),
        "kNN k=10": (knn_score(x, 10), False),
        "Mahalanobis, shared covariance": (mahalanobis(False), False),
        "relative Mahalanobis": (mahalanobis(True), False),
        "kNN on [embedding, √ImageNet probabilities]": (knn_score(hybrid), False),
        "kNN + ImageNet footprint gate (mass ≥ 0.1)": (footprint(0.1), False),
        "contrast, unknowns of the gallery folds filed": (knn_score(x, filed=unknown_filed), True),
        "contrast, half the raccoons filed": (knn_score(x, filed=lambda f: r_filed), False),
        "contrast, both filed": (knn_score(x, filed=lambda f: np.concatenate([unknown_filed(f), r_filed])), True),
    }
    report: dict = {"command": "python " + " ".join(sys.argv), "model": settings.model, "scores": {}}
    with progress_bar("scores × folds", len(candidates) * folds) as advance:
        for name, (score, held_unknowns) in candidates.items():
            kept, right, unk, rac = [], [], [], []
            for f in range(folds):
                g, t = k_idx[fold[k_idx] != f], k_idx[fold[k_idx] == f]
                st, pt = score(g, t, f)
                kept.append(st)
                right.append(pt == sp[t])
                unk.append(score(g, u_idx[fold[u_idx] == f] if held_unknowns else u_idx, f)[0])
                rac.append(score(g, r_test, f)[0])
                advance(1)
            report["scores"][name] = sweep(np.concatenate(kept), np.concatenate(right), np.concatenate(unk), np.concatenate(rac))
    out.mkdir(parents=True, exist_ok=True)
    (out / "score_candidates.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (out / "score_candidates.md").write_text(md)
    print(md)


def sweep(known: np.ndarray, right: np.ndarray, unknown: np.ndarray, raccoon: np.ndarray) -> dict:
    kept = lambda th: float(np.mean((known >= th) & right))  # noqa: E731
    out: dict = {}
    for q in (0.005, 0.01, 0.02):
        th = np.quantile(unknown, 1 - q)
        out[f"unknowns {100 * q:g}%"] = {"kept": kept(th), "raccoons_in": float(np.mean(raccoon >= th))}
    for q in (0.01, 0.02, 0.05):
        th = np.quantile(raccoon, 1 - q)
        out[f"raccoons {100 * q:g}%"] = {"kept": kept(th), "unknowns_in": float(np.mean(unknown >= th))}
    return out


def markdown(r: dict) -> str:
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    first = next(iter(r["scores"].values()))
    cols = list(first)
    lines = ["# Open-set score candidates (thresholds swept)", "",
             f"Command: `{r['command']}`. Model: {r['model']}. Same grouped folds as docs/admit.md (pooled over "
             "5 folds). Each cell: cats + dogs kept as the right species at the threshold that lets the given share "
             "of one kind of unknown in (and, in brackets, the other kind let in there). No health gate, no margin.", "",
             "| score | " + " | ".join(f"at {c} in" for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name, s in r["scores"].items():
        cells = []
        for c in cols:
            v = s[c]
            other = v.get("raccoons_in", v.get("unknowns_in"))
            cells.append(f"{pct(v['kept'])} ({pct(other)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli()
