"""Hardware-aware tuning with Optuna: which model, runtime, k, threshold target and door window
give the most right animals through the door, the fewest wrong opens and the lowest latency
on *this* device.

Each trial is judged the way the door is: the test photos (twin groups held out of the gallery)
become visits of live frames run through the service's frame pipeline and door window
(``kennelgate.visits``), scored by right animals admitted within the visit and by wrong opens (a
constraint: a trial over the limit is infeasible, never traded for availability). Latency is
measured, not modelled: the median time of one frame through the pipeline on this machine, per
model and runtime, nothing memoised. What does not depend on the trial is made once: the live
frames, the health gate's frame statistics, and the embeddings (per model, on disk beside the
study), so a trial after the first of its model decodes, decides and runs the door, and a study
resumes where it stopped. Runtimes share a model's embeddings (the same graph: they agree to
float rounding), so a runtime changes latency only.

Resolution comes with the model (Lite0 224 px, Lite1 240, Lite2 260: the exported graphs have a
fixed input), so it is tuned through the model variant.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from index.folders import OTHER, LabeledPhoto
from index.gallery import Gallery, SpeciesPhotos
from index.scoring import twin_groups
from kennelgate.corruptions import to_work_size
from kennelgate.deciders import decider_from
from kennelgate.door import WindowPolicy
from kennelgate.health_features import FrameFeatures, frame_features
from kennelgate.engine import Engine
from kennelgate.motion import MotionGate
from kennelgate.settings import Settings
from kennelgate.visits import FPS, live_batches, live_frame, run_visits

TUNED = ("model", "providers", "k", "target_accept", "window_k", "window_n")
ENV = {name: f"KENNELGATE_{name.upper()}" for name in TUNED}
LATENCY_FRAMES = 40


def runtimes() -> list[str]:
    """Runtimes installed here: ONNX Runtime's CPU provider always, OpenVINO when installed."""
    return ["cpu"] + (["openvino"] if importlib.util.find_spec("openvino") else [])


@dataclass
class TrialResult:
    admitted: float  # right animals admitted within the visit's frames (known visits)
    wrong_open: float  # visits that opened a wrong door (known and unknown together)
    wrong_open_known: float
    wrong_open_unknown: float
    frame_right: float
    latency_ms: float


class VectorCache:
    """Embeddings of one model keyed by the image's pixels, kept in memory and in an ``.npz``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.dirty = False
        if path.is_file():
            data = np.load(path)
            self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    @staticmethod
    def key(image: Image.Image) -> str:
        return hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest()

    def embed_with(self, embed: Callable[[list[Image.Image]], np.ndarray]) -> Callable[[list[Image.Image]], np.ndarray]:
        def cached(images: list[Image.Image]) -> np.ndarray:
            keys = [self.key(im) for im in images]
            todo = [i for i, k in enumerate(keys) if k not in self.vectors]
            if todo:
                for i, v in zip(todo, embed([images[i] for i in todo])):
                    self.vectors[keys[i]] = v
                self.dirty = True
            return np.stack([self.vectors[k] for k in keys])

        return cached

    def save(self) -> None:
        if self.dirty and self.vectors:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(list(self.vectors)), vectors=np.stack(list(self.vectors.values())))
            tmp.replace(self.path)
            self.dirty = False


@dataclass
class VisitSet:
    """Visits of a study: one per photo, with its truth and its live frames (made once)."""

    name: str
    photos: list[LabeledPhoto]
    truths: list[str]
    images: list[Image.Image]
    seed: int
    frames: list[list[bytes]] = field(default_factory=list)

    @property
    def known(self) -> int:
        return sum(t != OTHER for t in self.truths)

    @property
    def unknown(self) -> int:
        return sum(t == OTHER for t in self.truths)


class Workbench:
    """The data of a study (gallery and test split, visit images) and what each trial needs.

    The test photos (twin groups held out of the gallery) give two sets of visits: ``search``,
    which every trial is scored on, and ``confirm``, other photos of the same held-out groups,
    on which the front is checked once the search is over (a point picked as the best of many
    on the same visits looks better than it is). The unknowns are in both, with other frames.
    """

    def __init__(
        self, settings: Settings, known: Sequence[LabeledPhoto], unknown: Sequence[LabeledPhoto], cache_dir: Path,
        visits: int = 300, frames: int = 8, test_share: float = 0.2, seed: int = 0,
        on_progress: Optional[Callable[[str, int, int], None]] = None,
    ) -> None:
        self.settings = settings
        self.frames = frames
        self.seed = seed
        self.cache_dir = cache_dir
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self._engines: dict[tuple[str, str], Engine] = {}
        self._caches: dict[str, VectorCache] = {}
        self._latency: dict[tuple[str, str], float] = {}
        self._galleries: dict[str, Gallery] = {}
        self.known = list(known)
        # Twin groups (bursts, near-duplicates) never straddle gallery and test: grouped by the
        # default model's embeddings, the same split for every trial.
        base = self.engine(settings.model, settings.providers)
        vectors = self.photo_vectors(settings.model, self.known)
        groups = twin_groups(vectors, settings.twin_cosine)
        rng = np.random.default_rng(seed)
        test_group = rng.random(groups.max() + 1) < test_share
        is_test = test_group[groups]
        self.gallery_photos = [p for p, t in zip(self.known, is_test) if not t]
        test = [p for p, t in zip(self.known, is_test) if t]
        order = rng.permutation(len(test))
        self._features: dict[str, FrameFeatures] = {}
        self.species = sorted({p.species for p in self.gallery_photos})

        def visit_set(name: str, rows: np.ndarray, seed_: int) -> VisitSet:
            photos = [test[i] for i in sorted(rows)] + list(unknown)
            images = [to_work_size(base.encoder.load(p.path)) for p in photos]
            return VisitSet(name, photos, [p.species for p in photos[: len(rows)]] + [OTHER] * len(unknown),
                            images, seed_)

        self.search = visit_set("search", order[:visits], seed)
        held = order[visits : 2 * visits]
        self.confirm = visit_set("confirm", held, seed + 1) if len(held) else None

    def engine(self, model: str, providers: str) -> Engine:
        key = (model, providers)
        if key not in self._engines:
            self._engines[key] = Engine(self.settings.model_copy(update={"model": model, "providers": providers}))
        return self._engines[key]

    def cache(self, model: str) -> VectorCache:
        if model not in self._caches:
            safe = model.replace("/", "_").replace(":", "-")
            self._caches[model] = VectorCache(self.cache_dir / f"{safe}.npz")
        return self._caches[model]

    def photo_vectors(self, model: str, photos: Sequence[LabeledPhoto]) -> np.ndarray:
        engine = self.engine(model, self.settings.providers)
        cache = self.cache(model)
        embed = cache.embed_with(lambda ims: engine.encoder.embed(ims).vectors)
        out = []
        for start in range(0, len(photos), 32):
            part = photos[start : start + 32]
            out.append(embed([engine.encoder.load(p.path) for p in part]))
            self.on_progress(f"embedding photos ({model})", start + len(part), len(photos))
        cache.save()
        return np.concatenate(out)

    def gallery(self, model: str) -> Gallery:
        if model not in self._galleries:
            vectors = self.photo_vectors(model, self.gallery_photos)
            g = self.engine(model, self.settings.providers).empty_gallery()
            for name in self.species:
                rows = [i for i, p in enumerate(self.gallery_photos) if p.species == name]
                g.add(name, SpeciesPhotos(vectors[rows], [str(self.gallery_photos[i].path) for i in rows],
                                          [self.gallery_photos[i].breed for i in rows]))
            self._galleries[model] = g
        return self._galleries[model]

    def latency_ms(self, model: str, providers: str) -> float:
        """Median milliseconds for one live frame through the pipeline, one frame at a time, as a
        camera sends them (no batching, no cache), on this machine."""
        key = (model, providers)
        if key not in self._latency:
            engine = self.engine(model, providers)
            pipeline = engine.pipeline(decider=decider_from(engine.settings, self.gallery(model)))
            rng = np.random.default_rng(self.seed)
            images = self.search.images
            frames = [live_frame(images[i % len(images)], rng, (426, 320)) for i in range(LATENCY_FRAMES + 5)]
            times = []
            for j, frame in enumerate(frames):
                t0 = time.perf_counter()
                pipeline.run([frame], health=engine.settings.health)
                if j >= 5:  # the first frames warm the session up
                    times.append(1000 * (time.perf_counter() - t0))
            self._latency[key] = float(np.median(times))
        return self._latency[key]

    def features(self, image: Image.Image) -> FrameFeatures:
        """The health gate's frame statistics, memoised: they depend on the frame, not the trial."""
        key = VectorCache.key(image)
        if key not in self._features:
            self._features[key] = frame_features(image)
        return self._features[key]

    def batches(self, visits: VisitSet) -> list[list[bytes]]:
        """The visits' live frames, made once: every trial sees the same camera frames."""
        if not visits.frames:
            for j, batch in enumerate(live_batches(visits.images, self.frames, visits.seed)):
                visits.frames.append(batch)
                self.on_progress(f"making live frames ({visits.name})", j + 1, self.frames)
        return visits.frames

    def run(self, params: dict, visits: Optional[VisitSet] = None) -> TrialResult:
        """One trial: visits (``search`` unless told) through the pipeline with these settings,
        and the measured latency."""
        visits = visits or self.search
        s = self.settings.model_copy(update=params)
        model = params["model"]
        gallery = self.gallery(model)
        engine = self.engine(model, params["providers"])
        cache = self.cache(model)
        pipeline = engine.pipeline(embed=cache.embed_with(lambda ims: engine.encoder.embed(ims).vectors),
                                   decider=decider_from(s, gallery), features=self.features)
        policy = WindowPolicy(s.window_k, s.window_n, s.window_seconds)
        _, summary = run_visits(
            pipeline, visits.images, visits.truths, [str(p.path) for p in visits.photos], set(self.species), policy,
            lambda: MotionGate(s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every),
            frames=self.frames, health=s.health, batches=self.batches(visits),
        )
        cache.save()
        known = summary.known_visits
        unknown = summary.unknown_visits
        wrong = (summary.wrong_open_known * known + (summary.wrong_open_unknown if unknown else 0.0) * unknown)
        return TrialResult(
            admitted=summary.admitted[f"{self.frames} frames ({self.frames / FPS:g} s)"],
            wrong_open=wrong / max(known + unknown, 1),
            wrong_open_known=summary.wrong_open_known,
            wrong_open_unknown=summary.wrong_open_unknown if unknown else 0.0,
            frame_right=summary.frame_right_accept,
            latency_ms=self.latency_ms(model, params["providers"]),
        )


def suggest(trial, models: Sequence[str], providers: Sequence[str]) -> dict:
    """The search space (Optuna's define-by-run)."""
    n = trial.suggest_int("window_n", 1, 8)
    return {
        "model": trial.suggest_categorical("model", list(models)),
        "providers": trial.suggest_categorical("providers", list(providers)),
        "k": trial.suggest_int("k", 1, 15),
        "target_accept": trial.suggest_float("target_accept", 0.85, 0.995, step=0.005),
        "window_n": n,
        "window_k": trial.suggest_int("window_k", 1, n),
    }


def defaults(settings: Settings) -> dict:
    return {name: getattr(settings, name) for name in TUNED}


def pareto(rows: Sequence[dict], max_wrong: float) -> list[dict]:
    """Feasible trials (wrong opens within the limit) that no other feasible trial beats on both
    admitted (higher) and latency (lower)."""
    ok = [r for r in rows if r["wrong_open"] <= max_wrong]
    front = []
    for r in ok:
        beaten = any(o["admitted"] >= r["admitted"] and o["latency_ms"] <= r["latency_ms"]
                     and (o["admitted"] > r["admitted"] or o["latency_ms"] < r["latency_ms"]) for o in ok)
        if not beaten:
            front.append(r)
    return sorted(front, key=lambda r: r["latency_ms"])


def choose(front: Sequence[dict], max_ms: float) -> Optional[dict]:
    """What ``--apply`` writes: the most right animals admitted within the latency budget (then the faster)."""
    fit = [r for r in front if r["latency_ms"] <= max_ms]
    return max(fit, key=lambda r: (r["admitted"], -r["latency_ms"])) if fit else None


def apply_to_env(params: dict, env_file: Path) -> str:
    """Write the tuned settings into ``env_file`` (``KENNELGATE_*`` lines; other lines kept)."""
    from kennelgate.atomic import write_text_atomic

    keep = []
    if env_file.is_file():
        keep = [line for line in env_file.read_text().splitlines()
                if line.split("=", 1)[0].strip() not in ENV.values()]
    value = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731 - 0.91, not 0.9099999999999999
    text = "\n".join(keep + [f"{ENV[k]}={value(params[k])}" for k in TUNED]) + "\n"
    write_text_atomic(env_file, text)
    return text
