"""The species gallery: photos' embeddings grouped by species, searched with FAISS.

Each species has its own exact inner-product index, so adding or removing one species cannot
change any score of another: nothing is forgotten by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import faiss
import numpy as np

from index.folders import OTHER

MIN_PHOTOS = 3
EXACT_MAX = 20_000  # up to this many photos a species is searched exactly (under ~2 ms here)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96


@dataclass
class SpeciesPhotos:
    """The photos of one species: unit vectors plus where each came from and its breed."""

    vectors: np.ndarray  # (n, D) float32, L2-normalised
    ids: list[str]
    breeds: list[Optional[str]]
    _index: Optional[faiss.IndexFlatIP] = field(default=None, repr=False, compare=False)
    _prototype: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if not (len(self.vectors) == len(self.ids) == len(self.breeds)):
            raise ValueError("vectors, ids and breeds must have the same length")

    @property
    def index(self) -> faiss.Index:
        """Exact search up to ``EXACT_MAX`` photos; above, an HNSW graph (search time grows with
        log n, not n: a 100k-photo species answers in about a millisecond; recall in
        scripts/search_scale.py)."""
        if self._index is None:
            d = self.vectors.shape[1]
            if len(self.vectors) <= EXACT_MAX:
                index = faiss.IndexFlatIP(d)
            else:
                index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
                index.hnsw.efSearch = HNSW_EF_SEARCH
            index.add(self.vectors)
            self._index = index
        return self._index

    def __len__(self) -> int:
        return len(self.vectors)

    def prototype(self) -> np.ndarray:
        # Photos never change after construction (adding makes a new object), so compute once.
        if self._prototype is None:
            p = self.vectors.mean(0)
            self._prototype = p / max(float(np.linalg.norm(p)), 1e-12)
        return self._prototype

    def breed_prototypes(self) -> dict[str, np.ndarray]:
        out = {}
        labels = np.array([b or "" for b in self.breeds])
        for breed in sorted(set(labels) - {""}):
            p = self.vectors[labels == breed].mean(0)
            out[breed] = p / max(float(np.linalg.norm(p)), 1e-12)
        return out


@dataclass
class Gallery:
    """Species → photos, for one encoder (``fingerprint``)."""

    fingerprint: str
    dim: int
    model_name: str = ""
    species: dict[str, SpeciesPhotos] = field(default_factory=dict)

    def names(self, include_other: bool = True) -> list[str]:
        return sorted(s for s in self.species if include_other or s != OTHER)

    def copy(self) -> "Gallery":
        """A new gallery sharing the (immutable) species photos: edit it without touching this one."""
        return Gallery(self.fingerprint, self.dim, self.model_name, dict(self.species))

    def add(self, name: str, photos: SpeciesPhotos, replace: bool = False) -> None:
        """Add a species (or extend it); ``replace`` swaps its photos wholesale."""
        if photos.vectors.ndim != 2 or photos.vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of dim {photos.vectors.shape[-1]} do not fit a gallery of dim {self.dim}")
        if name in self.species and not replace:
            old = self.species[name]
            photos = SpeciesPhotos(
                np.concatenate([old.vectors, photos.vectors]), old.ids + photos.ids, old.breeds + photos.breeds
            )
        if len(photos) < MIN_PHOTOS:
            raise ValueError(f"species {name!r} needs at least {MIN_PHOTOS} usable photos, got {len(photos)}")
        self.species[name] = photos

    def remove(self, name: str) -> SpeciesPhotos:
        if name not in self.species:
            raise KeyError(f"no species {name!r} in the gallery (have: {', '.join(self.names()) or 'none'})")
        return self.species.pop(name)

    def __len__(self) -> int:
        return sum(len(p) for p in self.species.values())
