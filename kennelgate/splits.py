"""Train / dev / test splits of a photo tree, by where the photos come from (seed 001's recipe).

- One distribution (only ROOT): 60/20/20 while small; when large, dev and test are capped
  (``cap`` photos each) and the rest trains.
- Two distributions (ROOT from the internet, ``field`` from the kennel's own camera): dev and test
  must look like what the door will see, so they come from the field photos only: ~80% of them
  train, the rest is split evenly between dev and test; every internet photo trains. Train is
  shuffled last.
- A near-duplicate group (bursts, re-saved copies: ``kennelgate.audit``) never straddles two
  splits: a test photo with its twin in train measures nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

SMALL = 10_000  # below this many photos: 60/20/20
CAP = 2_500  # dev and test photos each when large


@dataclass
class Split:
    train: list[int] = field(default_factory=list)
    dev: list[int] = field(default_factory=list)
    test: list[int] = field(default_factory=list)


def _fill(order: list[int], groups: np.ndarray, sizes: dict[str, int]) -> dict[str, list[int]]:
    """Whole groups, in ``order``, into dev, then test, then train, each up to its size."""
    out: dict[str, list[int]] = {name: [] for name in sizes}
    members: dict[int, list[int]] = {}
    for i in order:
        members.setdefault(int(groups[i]), []).append(i)
    names = list(sizes)
    for g in dict.fromkeys(int(groups[i]) for i in order):
        rows = members[g]
        target = next((n for n in names if len(out[n]) + len(rows) <= sizes[n]), names[-1])
        out[target] += rows
    return out


def split(groups: np.ndarray, field_mask: Optional[np.ndarray] = None, seed: int = 0,
          small: int = SMALL, cap: int = CAP) -> Split:
    """Indices per split; ``groups[i]`` the near-duplicate group of photo i, ``field_mask[i]`` True
    for a photo of the kennel's own camera."""
    rng = np.random.default_rng(seed)
    n = len(groups)
    field_mask = np.zeros(n, bool) if field_mask is None else field_mask
    # A group with any field photo counts as field: its internet twin must not train beside its test copy.
    field_groups = set(groups[field_mask].tolist())
    is_field = np.array([g in field_groups for g in groups])
    order = [int(i) for i in rng.permutation(n)]
    if is_field.any():
        pool = [i for i in order if is_field[i]]
        held = len(pool) - round(0.8 * len(pool))
        sizes = {"dev": held // 2, "test": held - held // 2, "train": n}
        parts = _fill(pool, groups, sizes)
        parts["train"] += [i for i in order if not is_field[i]]
    else:
        each = round(0.2 * n) if n < small else min(cap, round(0.2 * n))
        parts = _fill(order, groups, {"dev": each, "test": each, "train": n})
    train = [int(i) for i in rng.permutation(parts["train"])]  # shuffled last
    return Split(train=train, dev=sorted(parts["dev"]), test=sorted(parts["test"]))


def write_manifest(out: Path, paths: list[str], species: list[str], groups: np.ndarray, s: Split,
                   field_mask: Optional[np.ndarray], seed: int, command: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    field_mask = np.zeros(len(paths), bool) if field_mask is None else field_mask

    def rows(idx: list[int]) -> list[dict]:
        return [{"path": paths[i], "species": species[i], "group": int(groups[i]),
                 "source": "field" if field_mask[i] else "internet"} for i in idx]

    manifest = {
        "command": command, "seed": seed,
        "counts": {name: len(getattr(s, name)) for name in ("train", "dev", "test")},
        "per_species": {name: {sp: sum(species[i] == sp for i in getattr(s, name)) for sp in sorted(set(species))}
                        for name in ("train", "dev", "test")},
        "splits": {name: rows(getattr(s, name)) for name in ("train", "dev", "test")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for name in ("train", "dev", "test"):
        (out / f"{name}.txt").write_text("".join(f"{paths[i]}\t{species[i]}\n" for i in getattr(s, name)))
    return manifest
