"""Two-tier cascade: a small, fast encoder answers when it is clearly sure; otherwise the frame
goes to a bigger encoder with its own gallery — in this process (``Tier``) or on another
KennelGate server, e.g. an open_clip model on a GPU box (``RemoteTier``, its ``POST /v1/classify``).

"Clearly sure" is the small tier's distance from its own decision boundary: the best species'
score minus that species' threshold. Near zero, a small change in the embedding flips the
answer, so those frames are routed. The routing margin is tuned on held-out gallery photos to
keep the cascade's open-set accuracy within ``tolerance`` of the big tier alone while routing as
few frames as possible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from embedder.runtime import Encoder
from index.decision import Decider, Decision
from kennelgate.bench import Variant, _rate
from kennelgate.deciders import decider_from
from kennelgate.engine import Engine
from kennelgate.pipeline import boundary_margin as margin_of
from kennelgate.settings import Settings


@dataclass
class Tier:
    encoder: Encoder
    decider: Decider

    def decide(self, images) -> list[Decision]:
        return self.decider.decide(self.encoder.run(self.encoder.preprocess(images)).vectors)


def boundary_margin(decisions: Sequence[Decision], thresholds: dict[str, float]) -> np.ndarray:
    """Per decision: best non-`other` species score minus its threshold (signed)."""
    return np.array([margin_of(d, thresholds) for d in decisions], np.float64)


def correct(truths: Sequence[str], decisions: Sequence[Decision], known: set[str]) -> np.ndarray:
    """Open-set correctness: a known animal accepted as itself, anything else rejected."""
    return np.array([
        (d.accepted and d.species == t) if t in known else not d.accepted for t, d in zip(truths, decisions)
    ])


def tune_margin(
    small_margin: np.ndarray, small_ok: np.ndarray, big_ok: np.ndarray, tolerance: float = 0.001
) -> tuple[float, float, float]:
    """Smallest routing margin whose cascade accuracy is within ``tolerance`` of the big tier.

    Returns ``(margin, cascade_accuracy, routed_fraction)`` on the tuning set.
    """
    target = big_ok.mean() - tolerance
    candidates = np.unique(np.concatenate([[0.0], np.abs(small_margin[np.isfinite(small_margin)])]))
    for m in candidates:  # ascending: the first that meets the target routes the fewest frames
        routed = np.abs(small_margin) < m
        acc = np.where(routed, big_ok, small_ok).mean()
        if acc >= target:
            return float(m), float(acc), float(routed.mean())
    return float("inf"), float(big_ok.mean()), 1.0


class Cascade:
    def __init__(self, small: Tier, big: Tier, margin: float) -> None:
        self.small, self.big, self.margin = small, big, margin
        self._thresholds = small.decider.thresholds

    def decide(self, images) -> tuple[list[Decision], np.ndarray]:
        """Decisions, and which frames went to the big tier."""
        first = self.small.decide(images)
        routed = np.abs(boundary_margin(first, self._thresholds)) < self.margin
        out: list[Decision] = list(first)
        if routed.any():
            idx = np.flatnonzero(routed)
            for i, d in zip(idx, self.big.decide([images[i] for i in idx])):
                out[i] = d
        return out, routed


def combine(small: Sequence[Decision], big: Sequence[Decision], routed: np.ndarray) -> list[Decision]:
    return [b if r else s for s, b, r in zip(small, big, routed)]


def summary(truths, decisions: Sequence[Decision], known: set[str], routed: Optional[np.ndarray] = None) -> dict:
    ok = correct(truths, decisions, known)
    kn = np.array([t in known for t in truths])
    closed = np.array([d.best == t for t, d in zip(truths, decisions)])
    wrong_open = np.array([d.accepted and d.species != t for t, d in zip(truths, decisions)])
    return {
        "open_set_accuracy": float(ok.mean()),
        "cat_dog_accuracy": float(closed[kn].mean()) if kn.any() else float("nan"),
        "wrong_accepts": float(wrong_open.mean()),
        "routed": float(routed.mean()) if routed is not None else None,
    }


# --- tuning and evaluation on a gallery --------------------------------------------------------
def _build_tier(settings: Settings, model: str, providers: str, gallery) -> tuple[Engine, Tier]:
    engine = Engine(settings.model_copy(update={"model": model, "providers": providers}))
    kept, vectors, _ = engine.embed_photos(gallery)
    g = engine.gallery_from(kept, vectors)
    return engine, Tier(engine.encoder, decider_from(settings, g))


def evaluate(settings: Settings, small: Variant, big: Variant, gallery, test, bench_files=()) -> dict:
    """Tune the routing margin on 20% of the gallery (tiers built from the other 80%), then test.

    With ``bench_files``, also times each tier alone and the cascade end to end (batch 8).
    """
    rng = random.Random(1)
    idx = list(range(len(gallery)))
    rng.shuffle(idx)
    cut = int(0.8 * len(idx))
    build, tune = [gallery[i] for i in idx[:cut]], [gallery[i] for i in idx[cut:]]
    test = test or tune  # no test photos: report on the tuning photos (optimistic)
    known = {p.species for p in build} - {"other"}
    out: dict = {"small": small.label, "big": big.label}
    tiers = {}
    for name, v in (("small", small), ("big", big)):
        engine, tier = _build_tier(settings, v.model, v.providers, build)
        tiers[name] = tier
        for split_name, photos in (("tune", tune), ("test", test)):
            kept, vecs, _ = engine.embed_photos(photos)
            out.setdefault(split_name, {})[name] = (kept, tier.decider.decide(vecs))
    thr = tiers["small"].decider.thresholds
    res = {}
    for split_name in ("tune", "test"):
        (kept_s, d_small), (kept_b, d_big) = out[split_name]["small"], out[split_name]["big"]
        assert [p.path for p in kept_s] == [p.path for p in kept_b]
        truths = [p.species if p.species in known else "other" for p in kept_s]
        res[split_name] = (truths, d_small, d_big, boundary_margin(d_small, thr))
    truths, d_small, d_big, margin = res["tune"]
    m, _, _ = tune_margin(margin, correct(truths, d_small, known), correct(truths, d_big, known))
    truths, d_small, d_big, margin = res["test"]
    routed = np.abs(margin) < m
    combined = combine(d_small, d_big, routed)
    result = {
        "small_label": small.label, "big_label": big.label,
        "margin": m,
        "small alone": summary(truths, d_small, known),
        "big alone": summary(truths, d_big, known),
        "cascade": summary(truths, combined, known, routed),
    }
    if not bench_files:
        return result
    # Speed: end to end (decode → decision) over the bench files, each tier alone and the cascade.
    c = Cascade(tiers["small"], tiers["big"], m)
    enc = tiers["small"].encoder

    def e2e(fn, b=8):
        def run() -> int:
            for i in range(0, len(bench_files), b):
                fn([enc.load(f) for f in bench_files[i : i + b]])
            return len(bench_files)
        return _rate(run)

    result["speed_b8"] = {
        "small alone": e2e(tiers["small"].decide), "big alone": e2e(tiers["big"].decide), "cascade": e2e(lambda ims: c.decide(ims)),
    }
    result["routed_on_bench_files"] = float(c.decide([enc.load(f) for f in bench_files])[1].mean())
    return result


def markdown(r: dict) -> str:
    """The cascade against each tier alone, as docs/benchmarks.md shows it."""
    lines = [
        f"Small tier **{r['small_label']}**, big tier **{r['big_label']}**; routing margin {r['margin']:.4f} (tuned on 20% of the gallery "
        "held out, to keep open-set accuracy within 0.1 pt of the big tier).", "",
        "| | open-set accuracy | cat/dog accuracy | wrong accepts | frames to the big tier | end to end b8 img/s |",
        "|---|---|---|---|---|---|",
    ]
    for k in ("small alone", "big alone", "cascade"):
        s = r[k]
        routed = "-" if s["routed"] is None else f"{100 * s['routed']:.1f}%"
        speed = f"{r['speed_b8'][k]:.1f}" if "speed_b8" in r else "-"
        lines.append(
            f"| {k} | {100 * s['open_set_accuracy']:.2f}% | {100 * s['cat_dog_accuracy']:.2f}% | "
            f"{100 * s['wrong_accepts']:.2f}% | {routed} | {speed} |"
        )
    return "\n".join(lines) + "\n"


