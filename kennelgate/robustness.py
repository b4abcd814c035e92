"""The corruption suite: the core evaluation re-run on corrupted copies of the test photos.

For every corruption × severity each test photo becomes one camera frame, which goes through
the same path as in service: health gate → encoder → gallery decision. A frame the gate stops
is an abstention. The door's rule is judged as the service applies it: a wrong open needs K
frames in a row accepted as the same wrong species, so every frame that was wrongly accepted is
followed by K−1 more frames of the same photo (new corruption draw, slight re-framing) and the
door opens wrongly only if all of them agree.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps

from index.decision import Decider, Decision
from index.folders import OTHER, LabeledPhoto
from kennelgate.corruptions import CORRUPTIONS, SEVERITIES, corrupt, seed_for, to_work_size
from kennelgate.engine import Engine
from kennelgate.health import FAULTS, OK, HealthThresholds, check
from kennelgate.health_detector import FaultDetector
from kennelgate.health_training import SOURCES

CLEAN = "clean"
# Which fault the gate should name for a corruption (the others are left to abstention): the
# corruptions its learned detectors are trained on, and darkness for the rule.
EXPECTED_FAULT = {"dark": "dark", **{c: fault for fault, names in SOURCES.items() for c in names}}


@dataclass
class ConditionResult:
    corruption: str
    severity: int  # 0 for clean
    frames: int
    known: int
    unknown: int
    accuracy: float  # known frames whose best match is right, model alone (no gate, no threshold)
    right_accept_rate: float  # known frames accepted as their own species, gate on
    abstain_rate: float  # all frames neither accepted nor errors: gate stops + rejections
    gate_rate: float  # frames the health gate stopped
    wrong_accept_frame_nogate: float  # frames accepted as a wrong species without the gate
    wrong_accept_frame: float  # the same with the gate
    wrong_open_window: float  # K frames in a row accepted as the same wrong species (the door)
    wrong_open_windows: int
    faults: dict[str, int] = field(default_factory=dict)


@dataclass
class SuiteResult:
    k: int
    gallery: dict[str, int]
    test: dict[str, int]
    conditions: list[ConditionResult]
    thresholds: dict
    gate_detection: dict[str, dict] = field(default_factory=dict)
    wrong_opens: list[dict] = field(default_factory=list)
    detector: dict = field(default_factory=dict)  # the learned fault detectors in force: file, limits

    def as_dict(self) -> dict:
        return asdict(self)


def reframe(image: Image.Image, seed: int) -> Image.Image:
    """The same scene a moment later: a slightly different crop, sometimes mirrored."""
    rng = np.random.default_rng(seed)
    w, h = image.size
    f = rng.uniform(0.9, 1.0)
    cw, ch = int(w * f), int(h * f)
    x, y = int(rng.uniform(0, w - cw + 1)), int(rng.uniform(0, h - ch + 1))
    out = image.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)
    return ImageOps.mirror(out) if rng.random() < 0.5 else out


def _frame(image: Image.Image, corruption: str, severity: int, seed: int) -> Image.Image:
    return image if corruption == CLEAN else corrupt(image, corruption, severity, seed)


class SuiteRunner:
    def __init__(
        self, engine: Engine, decider: Decider, thresholds: HealthThresholds, k: int, seed: int = 0, workers: int = 2
    ) -> None:
        self.engine, self.decider, self.thresholds, self.k, self.seed = engine, decider, thresholds, k, seed
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.known = set(decider.gallery.names(include_other=False))
        self.detector = engine.health_detector
        self.pipeline = engine.pipeline(decider=decider)
        self._no_gate = thresholds.model_copy(update={"enabled": False})

    def _run(self, frames: Sequence[Image.Image]) -> tuple[list[str], list[Decision]]:
        """Each frame through the service's pipeline: the gate's verdict, and the decision the
        frame gets (for a frame the gate stopped: the one it would get without the gate, to
        measure what the gate prevents)."""
        b = self.engine.settings.batch_size
        results = self.pipeline.run(frames, health=self.thresholds, batch=b)
        stopped = [i for i, r in enumerate(results) if r.decision is None]
        if stopped:
            for i, r in zip(stopped, self.pipeline.run([frames[i] for i in stopped], health=self._no_gate, batch=b)):
                results[i].decision = r.decision
        return [r.health.fault for r in results], [r.decision for r in results]

    def condition(
        self, images: Sequence[Image.Image], truths: Sequence[str], ids: Sequence[str], corruption: str, severity: int
    ) -> tuple[ConditionResult, list[dict]]:
        frames = list(self.pool.map(
            lambda i: _frame(images[i], corruption, severity, seed_for(self.seed, corruption, severity, ids[i], 0)),
            range(len(images)),
        ))
        gate, decisions = self._run(frames)
        truth = np.array([t if t in self.known else OTHER for t in truths], dtype=object)
        known = truth != OTHER
        healthy = np.array([f == OK for f in gate])
        acc = np.array([d.accepted for d in decisions])
        species = np.array([d.species for d in decisions], dtype=object)
        best = np.array([d.best for d in decisions], dtype=object)
        wrong_nogate = acc & (species != truth)
        wrong = wrong_nogate & healthy
        opens, examples = self._windows(images, truth, ids, corruption, severity, np.flatnonzero(wrong), species)
        faults: dict[str, int] = {}
        for f in gate:
            if f != OK:
                faults[f] = faults.get(f, 0) + 1
        n = len(frames)
        result = ConditionResult(
            corruption=corruption, severity=severity, frames=n, known=int(known.sum()), unknown=int((~known).sum()),
            accuracy=float((best[known] == truth[known]).mean()) if known.any() else float("nan"),
            right_accept_rate=float((healthy & acc & (species == truth))[known].mean()) if known.any() else float("nan"),
            abstain_rate=float((~(healthy & acc)).mean()),
            gate_rate=float((~healthy).mean()),
            wrong_accept_frame_nogate=float(wrong_nogate.mean()),
            wrong_accept_frame=float(wrong.mean()),
            wrong_open_window=opens / n,
            wrong_open_windows=opens,
            faults=faults,
        )
        return result, examples

    def _windows(self, images, truth, ids, corruption, severity, suspects, species) -> tuple[int, list[dict]]:
        """Follow each wrongly accepted frame with K−1 more of the same scene; count the doors opened."""
        if self.k <= 1 or len(suspects) == 0:
            return len(suspects), [
                {"id": ids[i], "truth": truth[i], "opened_for": species[i], "corruption": corruption, "severity": severity}
                for i in suspects
            ]
        more = [
            (i, _frame(reframe(images[i], seed_for(self.seed, "reframe", ids[i], j)), corruption, severity,
                       seed_for(self.seed, corruption, severity, ids[i], j)))
            for i in suspects for j in range(1, self.k)
        ]
        gate, decisions = self._run([f for _, f in more])
        still: dict[int, bool] = {int(i): True for i in suspects}
        for (i, _), fault, d in zip(more, gate, decisions):
            if fault != OK or not d.accepted or d.species != species[i]:
                still[i] = False
        opened = [i for i, v in still.items() if v]
        return len(opened), [
            {"id": ids[i], "truth": truth[i], "opened_for": species[i], "corruption": corruption, "severity": severity}
            for i in opened
        ]


def synthetic_faults(n: int, seed: int = 0, size: tuple[int, int] = (426, 320)) -> dict[str, list[Image.Image]]:
    """Frames a broken camera sends that no photo corruption covers: no signal of several kinds."""
    rng = np.random.default_rng(seed)
    w, h = size
    frames: list[Image.Image] = []
    for i in range(n):
        kind = i % 3
        if kind == 0:  # black with sensor noise
            arr = np.clip(rng.normal(rng.uniform(0, 20), 1.5, (h, w, 1)), 0, 255).repeat(3, 2)
        elif kind == 1:  # a flat colour screen (encoder lost its input)
            arr = np.broadcast_to(rng.uniform(0, 255, 3), (h, w, 3)) + rng.normal(0, 1.0, (h, w, 3))
        else:  # a flat screen with an on-screen message
            arr = np.broadcast_to(rng.uniform(0, 255, 3), (h, w, 3)).copy()
            y, x = int(rng.uniform(0.3, 0.6) * h), int(rng.uniform(0.1, 0.4) * w)
            arr[y : y + 24, x : x + 140] = 255 - arr[y, x]
        frames.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return {"no_signal": frames}


def run_suite(
    engine: Engine,
    decider: Decider,
    photos: Sequence[LabeledPhoto],
    corruptions: Sequence[str] = tuple(CORRUPTIONS),
    severities: Sequence[int] = SEVERITIES,
    thresholds: Optional[HealthThresholds] = None,
    k: int = 3,
    seed: int = 0,
    on_progress: Optional[Callable[[int], None]] = None,
) -> SuiteResult:
    thresholds = thresholds or HealthThresholds()
    runner = SuiteRunner(engine, decider, thresholds, k, seed)
    images, truths, ids = [], [], []
    for p in photos:
        try:
            images.append(to_work_size(engine.encoder.load(p.path)))
        except Exception:  # noqa: BLE001 - an unreadable test photo is simply not in the suite
            continue
        truths.append(p.species)
        ids.append(str(p.path))
    result = SuiteResult(
        k=k, gallery={n: len(decider.gallery.species[n]) for n in decider.gallery.names()},
        test={t: truths.count(t) for t in sorted(set(truths))}, conditions=[], thresholds=thresholds.model_dump(),
    )
    plan = [(CLEAN, 0)] + [(c, s) for c in corruptions for s in severities]
    for corruption, severity in plan:
        cond, examples = runner.condition(images, truths, ids, corruption, severity)
        result.conditions.append(cond)
        result.wrong_opens += examples
        if on_progress:
            on_progress(1)
    result.gate_detection = gate_detection(result.conditions, thresholds, seed, runner.detector)
    result.detector = {"file": Path(runner.detector.source).name, "limits": runner.detector.thresholds,
                       "trained_on": runner.detector.info.get("trained_on", "")}
    runner.pool.shutdown()
    return result


def gate_detection(
    conditions: Sequence[ConditionResult], thresholds: HealthThresholds, seed: int = 0, detector: Optional[FaultDetector] = None
) -> dict[str, dict]:
    """Per fault type: share of frames at severity ≥ 3 the gate stops, and false alarms on clean frames."""
    out: dict[str, dict] = {}
    clean = next(c for c in conditions if c.corruption == CLEAN)
    out["clean_false_alarm"] = {"rate": clean.gate_rate, "frames": clean.frames, "faults": clean.faults}
    for fault in FAULTS:
        rows = [c for c in conditions if EXPECTED_FAULT.get(c.corruption) == fault and c.severity >= 3]
        if rows:
            n = sum(c.frames for c in rows)
            out[fault] = {
                "source": ", ".join(sorted({c.corruption for c in rows})) + " at severity 3-5",
                "frames": n,
                "stopped": sum(c.gate_rate * c.frames for c in rows) / n,
                "named_right": sum(c.faults.get(fault, 0) for c in rows) / n,
            }
    synth = synthetic_faults(150, seed)["no_signal"]
    named = sum(check(im, thresholds, detector).fault == "no_signal" for im in synth)
    out["no_signal"] = {"source": "synthetic: black, flat colour, on-screen message", "frames": len(synth),
                        "stopped": named / len(synth), "named_right": named / len(synth)}
    out["frozen"] = frozen_detection(thresholds, seed, detector)
    return out


def frozen_detection(thresholds: HealthThresholds, seed: int = 0, detector: Optional[FaultDetector] = None) -> dict:
    """A frozen feed (one frame repeated) against a live camera on a static scene (sensor noise)."""
    from kennelgate.health import FreezeDetector, check_stream

    rng = np.random.default_rng(seed)
    base = np.asarray(synthetic_scene(rng), np.float32)
    n = thresholds.frozen_frames * 3
    frozen, live = FreezeDetector(), FreezeDetector()
    still = Image.fromarray(base.astype(np.uint8))
    frozen_hits = [check_stream(still, thresholds, frozen, detector).fault == "frozen" for _ in range(n)]
    live_hits = [
        check_stream(Image.fromarray(np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8)),
                     thresholds, live, detector).fault == "frozen"
        for _ in range(n)
    ]
    first = frozen_hits.index(True) + 1 if any(frozen_hits) else None
    return {
        "source": f"one frame repeated {n} times vs a static scene with sensor noise (σ=2)",
        "frames": n, "stopped": float(any(frozen_hits)), "named_right": float(any(frozen_hits)),
        "detected_at_frame": first, "live_false_alarm": float(np.mean(live_hits)),
    }


def synthetic_scene(rng: np.random.Generator, size: tuple[int, int] = (426, 320)) -> Image.Image:
    """A textured, well-lit stand-in for an empty kennel doorway."""
    w, h = size
    coarse = rng.uniform(40, 220, (12, 16, 3)).astype(np.uint8)
    arr = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
    arr += rng.normal(0, 12, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
