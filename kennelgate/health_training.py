"""Train the learned camera-fault detectors on photos: clean frames vs the same photos corrupted.

Clean frames are the photos themselves plus three benign variants each (the jitter a working
camera adds from frame to frame: re-framing, exposure and contrast drift, sensor noise, JPEG
quality), so the detectors learn what a normal frame of this shelter looks like. Faulty frames
are the corruption suite's mud, over-exposure and defocus/motion blur at severities 3-5 (the
severities the gate must stop). Each fault's threshold is set on out-of-fold scores of the
original photos (grouped by photo, so no photo scores itself or its variants), at the
false-alarm rate asked for; the final model is then fitted on everything.

Needs LightGBM and scikit-learn (fold splitting), and albumentations for the corruptions
(the ``eval`` extra).
"""

from __future__ import annotations

import io
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps

from kennelgate.corruptions import corrupt, seed_for, to_work_size
from kennelgate.health_detector import LEARNED_FAULTS, FaultDetector, FaultModel
from kennelgate.health_features import FEATURE_NAMES, frame_features

CLEAN = "clean"
# Which corruptions of the suite train which detector (the suite then tests the same names).
SOURCES = {"bright": ("overexposure",), "occlusion": ("mud",), "blur": ("defocus_blur", "motion_blur")}
SEVERITIES = (3, 4, 5)
BENIGN_VARIANTS = 3
LGB_PARAMS = dict(
    objective="binary", n_estimators=250, num_leaves=15, learning_rate=0.05, min_child_samples=20,
    subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1,
)


@dataclass
class FrameTable:
    features: np.ndarray  # (frames, len(FEATURE_NAMES))
    label: np.ndarray  # "clean" or a fault name
    source: np.ndarray  # "clean", "benign" or the corruption's name
    severity: np.ndarray  # 0 for clean frames
    group: np.ndarray  # photo index: folds never split a photo's frames

    def save(self, path: Path) -> None:
        np.savez_compressed(path, features=self.features, label=self.label, source=self.source,
                            severity=self.severity, group=self.group, names=np.array(FEATURE_NAMES))

    @classmethod
    def load(cls, path: Path) -> "FrameTable":
        d = np.load(path)
        if list(d["names"]) != list(FEATURE_NAMES):
            raise ValueError(f"{path} holds other frame statistics than this version computes")
        return cls(d["features"], d["label"], d["source"], d["severity"], d["group"])


# (label, source, severity): what frames each photo gives.
TRAIN_PLAN = [(CLEAN, CLEAN, 0)] + [(CLEAN, "benign", v) for v in range(1, BENIGN_VARIANTS + 1)] + [
    (fault, name, s) for fault, names in SOURCES.items() for name in names for s in SEVERITIES
]
EVAL_PLAN = [(CLEAN, CLEAN, 0)] + [
    (fault, name, s) for fault, names in SOURCES.items() for name in names for s in (1, 2, 3, 4, 5)
]


def benign_variant(image: Image.Image, seed: int) -> Image.Image:
    """The same scene as a healthy camera might send it a moment later."""
    rng = random.Random(seed)
    w, h = image.size
    f = rng.uniform(0.8, 1.0)
    cw, ch = int(w * f), int(h * f)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = image.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    a = np.asarray(out, np.float32)
    mean = float(a.mean())
    a = (a - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.8, 1.25)
    a += np.random.default_rng(seed).normal(0.0, rng.uniform(0.0, 3.0), a.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=rng.randint(60, 95))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _photo_frames(args: tuple) -> list[tuple[str, str, int, np.ndarray]]:
    """Feature rows of one photo's frames, as ``plan`` lists them."""
    path, index, plan, seed = args
    from embedder.images import ImageError, open_image

    try:
        image = to_work_size(open_image(path, draft_size=256))  # as the corruption suite loads its photos
    except ImageError:
        return []
    rows = []
    for label, source, s in plan:
        frame_seed = seed_for(seed, index, source, s)
        if source == CLEAN:
            frame = image
        elif source == "benign":
            frame = benign_variant(image, frame_seed)
        else:
            frame = corrupt(image, source, s, seed=frame_seed)
        rows.append((label, source, s, frame_features(frame).values))
    return rows


def photo_frames(
    photos: Sequence[Path], plan=TRAIN_PLAN, seed: int = 0, workers: int = 2,
    on_progress: Optional[Callable[[int], None]] = None,
) -> FrameTable:
    """The frames ``plan`` makes of every photo, measured; unreadable photos are skipped."""
    jobs = [(p, i, plan, seed) for i, p in enumerate(photos)]
    rows: list[tuple] = []
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for (_, i, _, _), out in zip(jobs, pool.map(_photo_frames, jobs, chunksize=4)):
            rows += [(*r, i) for r in out]
            if on_progress:
                on_progress(1)
    if not rows:
        raise ValueError("none of the photos could be read")
    col = list(zip(*rows))
    return FrameTable(np.stack(col[3]), np.array(col[0]), np.array(col[1]), np.array(col[2]), np.array(col[4]))


def fit_detector(table: FrameTable, false_alarm: float = 0.0035, folds: int = 5, seed: int = 0) -> FaultDetector:
    """One model per fault; threshold at the (1 − false_alarm) quantile of out-of-fold clean scores."""
    import lightgbm as lgb
    from sklearn.model_selection import GroupKFold

    clean = table.label == CLEAN
    original = table.source == CLEAN  # thresholds are set on real photos, not on their variants
    if original.sum() < 50:
        raise ValueError(f"need at least 50 clean photos to calibrate, got {int(original.sum())}")
    models = {}
    for fault in LEARNED_FAULTS:
        use = np.flatnonzero(clean | (table.label == fault))
        y = (table.label[use] == fault).astype(int)
        if y.sum() < 20:
            raise ValueError(f"need at least 20 {fault} frames, got {int(y.sum())}")
        x, groups, calib = table.features[use], table.group[use], original[use]
        oof = np.zeros(len(use))
        for tr, te in GroupKFold(n_splits=folds).split(x, y, groups):
            m = lgb.LGBMClassifier(**LGB_PARAMS, random_state=seed).fit(x[tr], y[tr])
            oof[te] = m.predict_proba(x[te])[:, 1]
        threshold = float(np.quantile(oof[calib], 1.0 - false_alarm))
        final = lgb.LGBMClassifier(**LGB_PARAMS, random_state=seed).fit(x, y)
        models[fault] = FaultModel(fault, final.booster_, threshold, {
            "clean_frames": int((y == 0).sum()), "fault_frames": int(y.sum()),
            "oof_detection": float((oof[y == 1] > threshold).mean()),
            "oof_false_alarm": float((oof[calib] > threshold).mean()),
            "sources": list(SOURCES[fault]), "severities": list(SEVERITIES),
        })
    info = {
        "photos": int(len(np.unique(table.group))), "frames": int(len(table.label)), "false_alarm_target": false_alarm,
        "features": len(FEATURE_NAMES),
    }
    return FaultDetector(models, info)


def train(
    photos: Sequence[Path], false_alarm: float = 0.0035, seed: int = 0, workers: int = 2,
    on_progress: Optional[Callable[[int], None]] = None,
) -> FaultDetector:
    if len(photos) < 40:
        raise ValueError(f"training the health detectors needs at least 40 photos, got {len(photos)}")
    return fit_detector(photo_frames(photos, TRAIN_PLAN, seed, workers, on_progress), false_alarm, seed=seed)
