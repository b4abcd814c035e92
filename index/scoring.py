"""Per-species similarity scores for query vectors: kNN mean or prototype cosine.

``knn``: mean cosine of the query's k nearest photos of that species. It doubles as the
open-set score: an unknown animal may be close to one or two gallery photos, rarely to ten.
``prototype``: cosine to the species' mean vector (cheaper, weaker at rejecting unknowns).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from index.gallery import Gallery, SpeciesPhotos

Method = Literal["knn", "prototype"]
METHODS: tuple[Method, ...] = ("knn", "prototype")


def knn_score(photos: SpeciesPhotos, queries: np.ndarray, k: int) -> np.ndarray:
    kk = min(k, len(photos))
    sims, _ = photos.index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
    return sims.mean(1)


def species_scores(gallery: Gallery, queries: np.ndarray, method: Method, k: int) -> tuple[list[str], np.ndarray]:
    """``(names, scores)`` with ``scores[i, j]`` the score of query i for species ``names[j]``."""
    names = gallery.names()
    if not names:
        return names, np.zeros((len(queries), 0), np.float32)
    if method == "knn":
        cols = [knn_score(gallery.species[n], queries, k) for n in names]
        return names, np.stack(cols, 1).astype(np.float32)
    if method == "prototype":
        protos = np.stack([gallery.species[n].prototype() for n in names])
        return names, (queries @ protos.T).astype(np.float32)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def loo_scores(gallery: Gallery, name: str, method: Method, k: int) -> np.ndarray:
    """Scores of each photo of ``name`` against the rest of its own species (leave one out)."""
    photos = gallery.species[name]
    x = photos.vectors
    n = len(x)
    if method == "knn":
        kk = min(k, n - 1)
        sims, ids = photos.index.search(x, kk + 1)
        # Drop each photo's match with itself (wherever ties put it), keep the k best others.
        self_hit = ids == np.arange(n)[:, None]
        sims = np.where(self_hit, -np.inf, sims)
        top = -np.sort(-sims, axis=1)[:, :kk]
        return top.mean(1)
    total = x.sum(0)
    rest = (total[None, :] - x) / (n - 1)
    rest /= np.maximum(np.linalg.norm(rest, axis=1, keepdims=True), 1e-12)
    return (x * rest).sum(1)
