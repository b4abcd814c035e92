"""Per-species similarity scores for query vectors: contrast, kNN mean or prototype cosine.

``knn``: mean cosine of the query's k nearest photos of that species. It doubles as the
open-set score: an unknown animal may be close to one or two gallery photos, rarely to ten.
``contrast`` (the default): every column minus ``other_weight`` × the query's kNN score to the
photos filed under ``other``. An animal that looks like a cat but also like the raccoons staff
filed under ``other`` loses score; with no ``other`` photos it is ``knn``. Species are ranked
as by ``knn``, and the ``other`` column keeps its place against each species (it wins exactly
when the query is closer to ``other``), so margins and the "closest to other" rule are unchanged.
``prototype``: cosine to the species' mean vector (cheaper, weaker at rejecting unknowns).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from index.folders import OTHER
from index.gallery import Gallery, SpeciesPhotos

Method = Literal["contrast", "knn", "prototype"]
METHODS: tuple[Method, ...] = ("contrast", "knn", "prototype")
OTHER_WEIGHT = 0.5  # measured on grouped folds (docs/admit.md): 0.3 lets more raccoons in, 0.7 turns cats away


def knn_score(photos: SpeciesPhotos, queries: np.ndarray, k: int) -> np.ndarray:
    kk = min(k, len(photos))
    sims, _ = photos.index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
    return sims.mean(1)


def contrast(names: list[str], knn_scores: np.ndarray, other_weight: float) -> np.ndarray:
    """kNN scores → contrast scores: each column minus ``other_weight`` × the ``other`` column."""
    if OTHER not in names or other_weight == 0:
        return knn_scores
    return (knn_scores - other_weight * knn_scores[:, [names.index(OTHER)]]).astype(np.float32)


def base_method(method: Method) -> Method:
    """The method whose raw scores ``method`` is computed from."""
    return "knn" if method == "contrast" else method


def species_scores(
    gallery: Gallery, queries: np.ndarray, method: Method, k: int, other_weight: float = OTHER_WEIGHT
) -> tuple[list[str], np.ndarray]:
    """``(names, scores)`` with ``scores[i, j]`` the score of query i for species ``names[j]``."""
    names = gallery.names()
    if not names:
        return names, np.zeros((len(queries), 0), np.float32)
    if method == "contrast":
        names, raw = species_scores(gallery, queries, "knn", k)
        return names, contrast(names, raw, other_weight)
    if method == "knn":
        cols = [knn_score(gallery.species[n], queries, k) for n in names]
        return names, np.stack(cols, 1).astype(np.float32)
    if method == "prototype":
        protos = np.stack([gallery.species[n].prototype() for n in names])
        return names, (queries @ protos.T).astype(np.float32)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def twin_groups(vectors: np.ndarray, cosine: float) -> np.ndarray:
    """Group label per photo: near-twins (cosine ≥ ``cosine``, chained: bursts, frames of one
    video, one photo session) share a group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    rows, cols = [], []
    for start in range(0, n, 2048):  # blockwise: 100k photos never need an n×n matrix
        sims = vectors[start : start + 2048] @ vectors.T
        r, c = np.nonzero(sims >= cosine)
        rows.append(r + start)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    _, labels = connected_components(coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n)), directed=False)
    return labels


def held_out_scores(gallery: Gallery, name: str, method: Method, k: int, groups: np.ndarray) -> np.ndarray:
    """Scores of each photo of ``name`` against its own species without the photo's whole twin
    group (leave one group out): an unseen photo has no twin in the gallery, so calibrating on
    photos scored against their own twins would promise more than new photos get."""
    photos = gallery.species[name]
    x = photos.vectors
    n = len(x)
    if np.bincount(groups).max() > n // 2:  # one scene is most of the species: nothing to hold it out
        groups = np.arange(n)  # against, so fall back to leaving one photo out (the card warns)
    if method == "knn":
        biggest = int(np.bincount(groups).max())
        kk = max(1, min(k, n - biggest))
        sims, ids = photos.index.search(x, min(n, kk + biggest))
        sims = np.where(groups[ids] == groups[:, None], -np.inf, sims)  # no twin of the photo counts
        top = -np.sort(-sims, axis=1)[:, :kk]
        return np.where(np.isfinite(top), top, 0.0).mean(1)
    out = np.empty(n, np.float32)
    total = x.sum(0)
    for g in np.unique(groups):
        m = groups == g
        rest = total - x[m].sum(0)
        rest /= max(float(np.linalg.norm(rest)), 1e-12)
        out[m] = x[m] @ rest
    return out
