#!/usr/bin/env python3
"""Search at scale: a species with 100k photos, exact vs HNSW, timed through the decision path
(``Decider.decide`` on one frame's embedding, as the service calls it). Prints latency and
recall@k of HNSW against exact search; writes docs/search_scale.json.

The 100k vectors are synthetic (no species here has 100k photos): 1280-d unit vectors drawn
around 2000 scene centres, so that neighbours are as crowded as in a real gallery.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import typer

import index.gallery as gallery_mod
from index.calibration import Calibration, SpeciesCalibration
from index.decision import Decider
from index.gallery import Gallery, SpeciesPhotos

cli = typer.Typer(add_completion=False)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator, spread: float = 0.6) -> np.ndarray:
    pick = rng.integers(0, len(centres), n)
    return unit(centres[pick] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim) * 4)


def timed_decisions(decider: Decider, queries: np.ndarray) -> tuple[np.ndarray, list]:
    decider.decide(queries[:1])  # build the indexes before timing
    times, out = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(decider.decide(q[None, :])[0])
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000, out


@cli.command()
def main(
    photos: int = typer.Option(100_000, help="Photos of the big species."),
    dim: int = typer.Option(1280, help="Embedding size (EfficientNet-Lite: 1280)."),
    queries: int = typer.Option(300, help="Frames to time."),
    k: int = typer.Option(5, help="Neighbours per species (the kNN score)."),
    out: Path = typer.Option(Path("docs/search_scale.json"), help="Where the numbers go."),
    seed: int = 0,
) -> None:
    """Latency of one frame's decision against a 100k-photo species, exact vs HNSW, and recall@k."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, dim))
    big = clustered(photos, dim, centres, rng)
    small = clustered(1000, dim, rng.normal(size=(50, dim)), rng)
    q = clustered(queries, dim, centres, rng)
    cal = Calibration(k=k, target_accept=0.975, target_far=0.01, methods={"knn": {
        n: SpeciesCalibration(threshold=0.5, threshold_accept=0.5, photos=1, loo_accept_rate=1.0) for n in ("big", "small")
    }, "prototype": {}})
    result = {"command": "python " + " ".join(sys.argv), "photos": photos, "dim": dim, "k": k, "queries": queries}
    answers = {}
    default_max = gallery_mod.EXACT_MAX
    for label, exact_max in (("exact", photos + 1), ("hnsw", default_max)):
        gallery_mod.EXACT_MAX = exact_max
        try:
            g = Gallery("synthetic", dim)
            g.add("big", SpeciesPhotos(big, [str(i) for i in range(photos)], [None] * photos))
            g.add("small", SpeciesPhotos(small, [str(i) for i in range(1000)], [None] * 1000))
            t0 = time.perf_counter()
            g.species["big"].index  # noqa: B018 - build it
            build_s = time.perf_counter() - t0
            ms, decisions = timed_decisions(Decider(g, cal, k=k), q)
            _, ids = g.species["big"].index.search(q, k)
        finally:
            gallery_mod.EXACT_MAX = default_max
        answers[label] = (ids, decisions)
        result[label] = {"index": type(g.species["big"].index).__name__, "build_s": round(build_s, 2),
                         "decide_ms_p50": round(float(np.median(ms)), 3), "decide_ms_p99": round(float(np.quantile(ms, 0.99)), 3)}
        print(f"{label:5s} {result[label]['index']:14s} build {build_s:6.1f} s   one frame's decision: "
              f"p50 {result[label]['decide_ms_p50']:.3f} ms, p99 {result[label]['decide_ms_p99']:.3f} ms")
    exact_ids, exact_dec = answers["exact"]
    hnsw_ids, hnsw_dec = answers["hnsw"]
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact_ids, hnsw_ids)]))
    score_gap = float(np.max([abs(a.score - b.score) for a, b in zip(exact_dec, hnsw_dec)]))
    result["recall_at_k"] = round(recall, 4)
    result["max_score_difference"] = round(score_gap, 5)
    result["same_decisions"] = float(np.mean([(a.species, a.accepted) == (b.species, b.accepted) for a, b in zip(exact_dec, hnsw_dec)]))
    result["speedup"] = round(result["exact"]["decide_ms_p50"] / result["hnsw"]["decide_ms_p50"], 1)
    print(f"recall@{k} of HNSW vs exact: {recall:.4f}; largest kNN-score difference {score_gap:.5f}; "
          f"same decisions {100 * result['same_decisions']:.1f}%; HNSW is {result['speedup']}x faster than exact")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
