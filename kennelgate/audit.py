"""Data audit of a ``ROOT/<species>/…`` photo tree, before it becomes a gallery or a test set.

What staff upload is rarely clean: the same photo twice (re-saved, resized, cropped), bursts,
photos filed under the wrong species, a test set that leaks into the gallery, files that are not
photos at all. Each finding is one ``Finding`` (path, problem, detail, suggested label, the other
file), so the CLI can print it, write it as JSON lines, or show it in a report with thumbnails.

- near-duplicates: embedding cosine ≥ ``near_cosine`` or a perceptual hash (dHash) within
  ``hash_bits`` bits, chained into groups; identical bytes are named as such;
- leaks: a photo of this tree with a near-duplicate in another tree (``against``);
- suspected mislabels: each photo's label predicted from its nearest photos of every species,
  its own near-duplicate group left out (out of fold); flagged when another species is more
  likely than the photo's own by the per-species confidence thresholds of confident learning,
  ranked by the evidence;
- broken, tiny and odd files; the balance of the classes.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from embedder.batch import embed_sources
from embedder.runtime import Encoder
from index.folders import IMAGE_SUFFIXES, LabeledPhoto, normalise_species

# Measured with Lite1 (docs/audit.md): 85% centre crops of a photo keep a median cosine of 0.93 (5% below
# 0.88) while the nearest *other* photo of 1000 cats never reaches 0.87.
NEAR_COSINE = 0.88
HASH_BITS = 4  # dHash bits that may differ between near-duplicates (of 64)
HASH_MIN_COSINE = 0.75  # a hash match alone is not enough: flat or tiny images collide
TINY_SIDE = 64  # below this on the short side a photo teaches nothing
K = 5  # neighbours per species for the mislabel evidence
TEMPERATURE = 0.02  # cosine differences → probabilities (a typical species gap is ~0.05-0.1)
Progress = Optional[Callable[[int], None]]


@dataclass
class Finding:
    path: str
    problem: str  # near_duplicate | leak | mislabeled | broken | tiny | odd
    detail: str
    suggested: Optional[str] = None  # mislabeled: the species it looks like
    of: Optional[str] = None  # near_duplicate / leak: the other file
    group: Optional[int] = None  # near_duplicate: the group it belongs to
    evidence: Optional[float] = None  # mislabeled: p(suggested) - p(filed)

    def as_record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Audit:
    root: str
    photos: int
    counts: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)  # near-duplicate groups (≥ 2 photos)

    def by_problem(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.problem] = out.get(f.problem, 0) + 1
        return out

    @property
    def imbalance(self) -> float:
        """Largest species over smallest (1 = balanced)."""
        sizes = [n for n in self.counts.values() if n]
        return max(sizes) / min(sizes) if sizes else 1.0


def scan_tree(root: Path) -> tuple[list[LabeledPhoto], list[Finding]]:
    """Every file under ``root/<species>/`` (breed sub-folders included); non-images are 'odd'."""
    photos, odd = [], []
    for folder in sorted(d for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith(".")):
        species = normalise_species(folder.name)
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                photos.append(LabeledPhoto(f, species))
            else:
                odd.append(Finding(str(f), "odd", f"not an image file ({f.suffix or 'no extension'}): skipped"))
    return photos, odd


def dhash(path: Path) -> Optional[int]:
    """64-bit difference hash of a photo (cheap: JPEGs decode in draft mode)."""
    try:
        with Image.open(path) as im:
            im.draft("L", (64, 64))
            g = np.asarray(im.convert("L").resize((9, 8), Image.BILINEAR), np.int16)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def _hash_pairs(hashes: np.ndarray, other: Optional[np.ndarray] = None, bits: int = HASH_BITS):
    """Index pairs whose hashes differ in at most ``bits`` bits (blockwise popcount)."""
    b = other if other is not None else hashes
    rows, cols = [], []
    for start in range(0, len(hashes), 1024):
        x = np.bitwise_xor(hashes[start : start + 1024, None], b[None, :])
        count = np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)
        r, c = np.nonzero(count <= bits)
        rows.append(r + start)
        cols.append(c)
    return np.concatenate(rows), np.concatenate(cols)


def _cosine_pairs(x: np.ndarray, y: np.ndarray, cosine: float):
    rows, cols = [], []
    for start in range(0, len(x), 2048):
        r, c = np.nonzero(x[start : start + 2048] @ y.T >= cosine)
        rows.append(r + start)
        cols.append(c)
    return np.concatenate(rows), np.concatenate(cols)


def near_duplicate_groups(vectors: np.ndarray, hashes: np.ndarray, has_hash: np.ndarray,
                          cosine: float = NEAR_COSINE, bits: int = HASH_BITS) -> np.ndarray:
    """Group label per photo: photos linked by embedding or hash, chained."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    r1, c1 = _cosine_pairs(vectors, vectors, cosine)
    r2, c2 = _hash_pairs(hashes, bits=bits)
    both = has_hash[r2] & has_hash[c2]
    r2, c2 = r2[both], c2[both]
    similar = (vectors[r2] * vectors[c2]).sum(1) >= HASH_MIN_COSINE
    r, c = np.concatenate([r1, r2[similar]]), np.concatenate([c1, c2[similar]])
    _, labels = connected_components(coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n)), directed=False)
    return labels


def label_probabilities(vectors: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: Sequence[str],
                        k: int = K) -> np.ndarray:
    """``p[i, j]``: how much photo i looks like species ``names[j]`` from its k nearest photos of
    each species, its own near-duplicate group left out (so a twin cannot vouch for it)."""
    n = len(vectors)
    scores = np.zeros((n, len(names)), np.float32)
    cols = [np.flatnonzero(labels == s) for s in names]
    for start in range(0, n, 1024):
        sims = vectors[start : start + 1024] @ vectors.T
        sims[groups[start : start + 1024, None] == groups[None, :]] = -np.inf
        for j, c in enumerate(cols):
            kk = min(k, len(c))
            if kk == 0:
                scores[start : start + 1024, j] = -1.0
                continue
            top = -np.partition(-sims[:, c], kk - 1, axis=1)[:, :kk]
            top = np.where(np.isfinite(top), top, -1.0)
            scores[start : start + 1024, j] = top.mean(1)
    return _softmax(scores)


def probabilities_against(queries: np.ndarray, vectors: np.ndarray, labels: np.ndarray, names: Sequence[str],
                          k: int = K) -> np.ndarray:
    """``p[i, j]`` as in ``label_probabilities``, for photos outside the tree (a test set against
    the gallery): nothing to leave out."""
    scores = np.full((len(queries), len(names)), -1.0, np.float32)
    sims = queries @ vectors.T
    for j, s in enumerate(names):
        c = np.flatnonzero(labels == s)
        kk = min(k, len(c))
        if kk:
            scores[:, j] = -np.partition(-sims[:, c], kk - 1, axis=1)[:, :kk].mean(1)
    return _softmax(scores)


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = (scores - scores.max(1, keepdims=True)) / TEMPERATURE
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def suspected_mislabels(p: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> list[tuple[int, int, float]]:
    """(photo, suggested species, evidence) in the style of confident learning: another species'
    probability reaches that species' own typical confidence while the filed one's falls short of
    its own; strongest evidence first."""
    idx = {s: j for j, s in enumerate(names)}
    given = np.array([idx[s] for s in labels])
    thresholds = np.array([p[given == j, j].mean() if (given == j).any() else 1.0 for j in range(len(names))])
    out = []
    for i in range(len(p)):
        g = given[i]
        if p[i, g] >= thresholds[g]:
            continue
        others = [(p[i, j], j) for j in range(len(names)) if j != g and p[i, j] >= thresholds[j]]
        if others:
            pj, j = max(others)
            out.append((i, j, float(pj - p[i, g])))
    return sorted(out, key=lambda t: -t[2])


def audit(
    root: Path,
    encoder: Encoder,
    against: Optional[Path] = None,
    near_cosine: float = NEAR_COSINE,
    batch_size: int = 16,
    on_progress: Progress = None,
) -> Audit:
    photos, findings = scan_tree(root)
    result = embed_sources(encoder, [p.path for p in photos], batch_size, on_progress)
    for i, reason in sorted(result.errors.items()):
        findings.append(Finding(str(photos[i].path), "broken", reason))
    ok = [photos[i] for i in result.ok]
    vectors = result.vectors
    for p in ok:
        with Image.open(p.path) as im:
            w, h = im.size
        if min(w, h) < TINY_SIDE:
            findings.append(Finding(str(p.path), "tiny", f"{w}x{h}: under {TINY_SIDE} px on a side"))
    hashes = np.array([dhash(p.path) or 0 for p in ok], dtype=np.uint64)
    has_hash = np.array([h != 0 for h in hashes]) if len(ok) else np.zeros(0, bool)
    groups = near_duplicate_groups(vectors, hashes, has_hash, near_cosine)
    sha = [hashlib.sha256(p.path.read_bytes()).hexdigest() for p in ok]
    report = Audit(str(root), len(photos), counts={})
    for p in ok:
        report.counts[p.species] = report.counts.get(p.species, 0) + 1
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if len(members) < 2:
            continue
        report.groups.append([str(ok[i].path) for i in members])
        keeper = members[0]
        for i in members[1:]:
            same = sha[i] == sha[keeper]
            cos = float(vectors[i] @ vectors[keeper])
            detail = "identical bytes" if same else f"near-duplicate (cosine {cos:.3f})"
            if ok[i].species != ok[keeper].species:
                detail += f"; filed under {ok[i].species!r}, the other under {ok[keeper].species!r}"
            findings.append(Finding(str(ok[i].path), "near_duplicate", detail, of=str(ok[keeper].path), group=int(g)))
    names = sorted(report.counts)
    labels = np.array([p.species for p in ok], dtype=object)
    if len(names) > 1:
        p = label_probabilities(vectors, labels, groups, names)
        for i, j, evidence in suspected_mislabels(p, labels, names):
            findings.append(Finding(
                str(ok[i].path), "mislabeled",
                f"filed under {labels[i]!r} but looks like {names[j]!r} (p {p[i, j]:.2f} vs {p[i, names.index(labels[i])]:.2f})",
                suggested=names[j], evidence=round(evidence, 3),
            ))
    if against is not None:
        findings += leaks(ok, vectors, hashes, has_hash, against, encoder, near_cosine, batch_size)
    report.findings = findings
    return report


def leaks(ok: Sequence[LabeledPhoto], vectors: np.ndarray, hashes: np.ndarray, has_hash: np.ndarray, against: Path,
          encoder: Encoder, near_cosine: float, batch_size: int) -> list[Finding]:
    """Photos of this tree with a near-duplicate in ``against`` (e.g. gallery vs test set)."""
    theirs, _ = scan_tree(against)
    res = embed_sources(encoder, [p.path for p in theirs], batch_size)
    kept = [theirs[i] for i in res.ok]
    if not kept or not len(ok):
        return []
    their_hashes = np.array([dhash(p.path) or 0 for p in kept], dtype=np.uint64)
    r1, c1 = _cosine_pairs(vectors, res.vectors, near_cosine)
    r2, c2 = _hash_pairs(hashes, their_hashes)
    both = has_hash[r2] & (their_hashes[c2] != 0)
    both &= (vectors[r2] * res.vectors[c2]).sum(1) >= HASH_MIN_COSINE
    pairs = sorted(set(zip(r1.tolist(), c1.tolist())) | set(zip(r2[both].tolist(), c2[both].tolist())))
    seen, out = set(), []
    for i, j in pairs:
        if i in seen:
            continue
        seen.add(i)
        cos = float(vectors[i] @ res.vectors[j])
        out.append(Finding(str(ok[i].path), "leak", f"also in {against} (cosine {cos:.3f}), as {kept[j].species!r}",
                           of=str(kept[j].path)))
    return out
