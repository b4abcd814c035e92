"""Frame health gate and camera corruptions, on real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from kennelgate.corruptions import CORRUPTIONS, corrupt, to_work_size
from kennelgate.health import FreezeDetector, HealthThresholds, check, check_stream
from tests.conftest import DATASETS, need_datasets

T = HealthThresholds()


def _photos(n: int, sub: str = "catsdogs") -> list[Image.Image]:
    need_datasets()
    files = sorted((DATASETS / sub).rglob("*.jpg"))[:: max(1, len(sorted((DATASETS / sub).rglob("*.jpg"))) // n)][:n]
    return [Image.open(f).convert("RGB") for f in files]


def test_clean_photos_rarely_raise_a_fault():
    photos = _photos(200)
    faults = [check(p, T).fault for p in photos]
    flagged = [f for f in faults if f != "ok"]
    assert len(flagged) <= 4, flagged  # ≤ 2% here; the calibrated rate is in docs/corruptions.md


def test_each_fault_is_named():
    photo = _photos(1)[0]
    arr = np.asarray(photo, np.float32)
    assert check(Image.new("RGB", (400, 300), (0, 0, 0)), T).fault == "no_signal"
    assert check(Image.new("RGB", (400, 300), (20, 40, 200)), T).fault == "no_signal"
    assert check(Image.fromarray((arr * 0.2).astype(np.uint8)), T).fault == "dark"
    assert check(Image.fromarray(np.clip(arr * 5 + 60, 0, 255).astype(np.uint8)), T).fault == "bright"
    assert check(to_work_size(photo).filter(ImageFilter.GaussianBlur(8)), T).fault == "blur"
    covered = np.asarray(to_work_size(photo)).copy()
    covered[:, : int(covered.shape[1] * 0.75)] = (90, 70, 40)  # a hand or a cover over most of the lens
    assert check(Image.fromarray(covered), T).fault == "occlusion"
    assert check(photo, T).fault == "ok"
    # Per-kennel overrides: a gate switched off, or a darker limit for an IR camera.
    dark = Image.fromarray((arr * 0.2).astype(np.uint8))
    assert check(dark, T.merged({"enabled": False})).fault == "ok"
    assert check(dark, T.merged({"dark_p95": 5})).fault != "dark"


def test_frozen_feed_is_caught_but_a_live_static_scene_is_not():
    photo = to_work_size(_photos(1)[0])
    t = T.merged({"frozen_frames": 10})
    frozen = FreezeDetector()
    faults = [check_stream(photo, t, frozen).fault for _ in range(12)]
    assert faults[:9] == ["ok"] * 9 and faults[9:] == ["frozen"] * 3
    rng = np.random.default_rng(0)
    base = np.asarray(photo, np.float32)
    live = FreezeDetector()
    noisy = [Image.fromarray(np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)) for _ in range(15)]
    assert all(check_stream(im, t, live).fault == "ok" for im in noisy)
    # One changed frame ends the run.
    assert check_stream(noisy[0], t, frozen).fault == "ok"


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_are_deterministic_and_grow_with_severity(name):
    photo = to_work_size(_photos(1)[0])
    a, b = corrupt(photo, name, 3, seed=7), corrupt(photo, name, 3, seed=7)
    assert a.size == photo.size and np.array_equal(np.asarray(a), np.asarray(b))
    base = np.asarray(photo, np.float32)
    change = [np.abs(np.asarray(corrupt(photo, name, s, seed=7), np.float32) - base).mean() for s in (1, 5)]
    assert change[0] > 0.1 and change[1] > change[0], change


def test_unknown_corruption_and_severity_are_refused():
    photo = _photos(1)[0]
    with pytest.raises(KeyError, match="unknown corruption"):
        corrupt(photo, "lava", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(photo, "fog", 6)


def test_learned_limits_can_be_overridden_per_kennel_and_stale_settings_are_ignored():
    blurred = to_work_size(_photos(1)[0]).filter(ImageFilter.GaussianBlur(8))
    assert check(blurred, T).fault == "blur"
    assert check(blurred, T.merged({"blur": 1.0})).fault == "ok"  # this kennel never calls a frame blurred
    assert check(blurred, T.merged({"blur_p": 3, "occlusion_area": 0.5})) .fault == "blur"  # old keys: ignored


def test_packaged_detectors_load_and_a_foreign_bundle_is_refused(tmp_path):
    import gzip
    import json

    from kennelgate import health_detector
    from kennelgate.health_features import FEATURE_NAMES, frame_features

    det = health_detector.get()
    assert set(det.models) == {"bright", "occlusion", "blur"}
    assert all(0.5 < t < 1.0 for t in det.thresholds.values())
    scores = det.scores(frame_features(_photos(1)[0]).values)
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    data = json.loads(gzip.decompress(health_detector.PACKAGED.read_bytes()))
    data["features"] = list(FEATURE_NAMES[:-1])
    (tmp_path / "old.json.gz").write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(health_detector.DetectorError, match="retrain"):
        health_detector.load(tmp_path / "old.json.gz")
    (tmp_path / "junk.json.gz").write_bytes(b"not gzip")
    with pytest.raises(health_detector.DetectorError, match="not a detector bundle"):
        health_detector.load(tmp_path / "junk.json.gz")


@pytest.mark.integration
def test_health_train_on_own_photos_is_used_by_the_engine(tmp_path, model_cache):
    """`kennelgate health train` on a folder of photos: the home's detectors replace the packaged
    ones, with thresholds set on held-out folds, and they catch faults on photos not trained on."""
    import os
    import subprocess
    import sys

    from kennelgate import health_detector
    from kennelgate.corruptions import corrupt
    from kennelgate.engine import Engine
    from kennelgate.settings import Settings
    from tests.conftest import photo_root

    need_datasets()
    cats = sorted((DATASETS / "catsdogs" / "cat").iterdir())
    dogs = sorted((DATASETS / "catsdogs" / "dog").iterdir())
    root = photo_root(tmp_path, {"all": cats[:40] + dogs[:40]}) / "all"
    env = {**os.environ, "KENNELGATE_HOME": str(tmp_path / "home"), "KENNELGATE_MODEL_CACHE": str(model_cache),
           "COLUMNS": "200"}
    p = subprocess.run([sys.executable, "-m", "kennelgate.cli", "health", "train", "--photos", str(root)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "occlusion" in p.stdout and "health_detector.json.gz" in p.stdout
    settings = Settings(home=tmp_path / "home", model_cache=model_cache)
    assert settings.health_detector_path == tmp_path / "home" / "health_detector.json.gz"
    det = Engine(settings).health_detector
    assert det.info["photos"] == 80 and det.models["blur"].info["fault_frames"] == 80 * 2 * 3
    held_out = [to_work_size(Image.open(f).convert("RGB")) for f in cats[500:520]]
    thresholds = HealthThresholds()
    assert sum(check(im, thresholds, det).fault != "ok" for im in held_out) <= 2
    mud = [corrupt(im, "mud", 5, seed=i) for i, im in enumerate(held_out)]
    assert sum(check(im, thresholds, det).fault == "occlusion" for im in mud) >= 16
    # A damaged file is refused with its reason, and the CLI says so.
    (tmp_path / "home" / "health_detector.json.gz").write_bytes(b"garbage")
    shown = subprocess.run([sys.executable, "-m", "kennelgate.cli", "health", "show"], capture_output=True, text=True, env=env)
    assert shown.returncode == 2 and "not a detector bundle" in shown.stderr
    assert health_detector.get().source.endswith("health_detector.json.gz")
