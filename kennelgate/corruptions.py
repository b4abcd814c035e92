"""Camera corruptions at five severities, for testing the door at the edges of what it sees.

Built from albumentations transforms where one exists (rain, lens drops, glare, blur,
noise, JPEG, downscaling); darkness, over-exposure and night IR are compositions of its basic
pixel operations; only mud blobs and fog are our own (see why in each). Every corruption is deterministic given a seed, so a report can be re-run.
Photos are first scaled so the short side is ``WORK_SIDE`` px: severities then mean the same
amount of blur, noise and dirt on every photo, whatever its original size.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)
WORK_SIDE = 320


def _lazy():
    # albumentations pulls in OpenCV: only the evaluation needs it, never the serving path.
    import albumentations as A

    return A


class _MudBlobs:
    """Opaque, soft-edged dirt blobs on the lens. No library has occlusion of this shape
    (albumentations' ``Spatter(mode="mud")`` is a translucent speckle, and slow)."""

    COVER = (0.08, 0.15, 0.25, 0.4, 0.6)  # share of the frame covered, by severity

    def __init__(self, severity: int) -> None:
        self.cover = self.COVER[severity - 1]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        alpha = np.zeros((h, w), np.float32)
        while (alpha > 0.5).mean() < self.cover:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = rng.uniform(0.08, 0.25) * min(h, w)
            ry, rx = r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4)
            d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
            alpha = np.maximum(alpha, np.clip((1.15 - d) / 0.3, 0, 1))  # soft rim
        red = rng.uniform(60, 105)
        mud = np.array([red, red * rng.uniform(0.65, 0.8), red * rng.uniform(0.35, 0.5)], np.float32)
        # Dirt on the lens is far out of focus: its shading varies smoothly, with no fine texture.
        coarse = Image.fromarray(rng.uniform(0, 255, (6, 8)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        texture = (np.asarray(coarse, np.float32)[..., None] / 255.0 - 0.5) * 30.0
        out = image.astype(np.float32) * (1 - alpha[..., None]) + (mud + texture) * alpha[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)


def _mud(s: int):
    return _MudBlobs(s)


def _rain(s: int):
    A = _lazy()
    kind = ["drizzle", "default", "heavy", "torrential", "torrential"][s - 1]
    streaks = A.RandomRain(rain_type=kind, brightness_coefficient=[0.9, 0.8, 0.7, 0.65, 0.6][s - 1], p=1.0)
    if s < 3:
        return streaks
    # From severity 3 on, drops also sit on the lens.
    drops = A.Spatter(mode="rain", intensity=([0.5, 0.6, 0.7][s - 3],) * 2, p=1.0)
    return A.Compose([streaks, drops])


def _dark(s: int):
    A = _lazy()
    f = [0.45, 0.3, 0.18, 0.1, 0.05][s - 1]
    # Underexposure scales light down; the sensor's noise does not scale with it.
    return A.Compose([
        A.MultiplicativeNoise(multiplier=(f, f), per_channel=False, elementwise=False, p=1.0),
        A.GaussNoise(std_range=([0.005, 0.01, 0.015, 0.02, 0.025][s - 1],) * 2, p=1.0),
    ])


def _night_ir(s: int):
    A = _lazy()
    f = [0.9, 0.75, 0.6, 0.45, 0.3][s - 1]
    return A.Compose([
        A.ToGray(num_output_channels=3, p=1.0),
        A.MultiplicativeNoise(multiplier=(f, f), per_channel=False, elementwise=False, p=1.0),
        A.GaussNoise(std_range=([0.03, 0.06, 0.09, 0.13, 0.18][s - 1],) * 2, per_channel=False, p=1.0),
    ])


def _overexposure(s: int):
    A = _lazy()
    f = [1.6, 2.0, 2.6, 3.4, 4.5][s - 1]
    return A.MultiplicativeNoise(multiplier=(f, f), per_channel=False, elementwise=False, p=1.0)


def _glare(s: int):
    A = _lazy()
    return A.RandomSunFlare(
        flare_roi=(0.2, 0.2, 0.8, 0.8), src_radius=[60, 100, 140, 190, 250][s - 1],
        num_flare_circles_range=(4 + s, 6 + 2 * s), method="overlay", p=1.0,
    )


class _Haze:
    """Fog as the atmospheric scattering model, I = J·t + A·(1 − t), with a patchy transmission t.

    Ours because albumentations' ``RandomFog`` takes 0.2–0.5 s per frame, too slow for a
    suite of thousands of frames.
    """

    DENSITY = (0.3, 0.45, 0.6, 0.72, 0.84)  # mean share of scattered light, by severity

    def __init__(self, severity: int) -> None:
        self.density = self.DENSITY[severity - 1]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        coarse = Image.fromarray(rng.uniform(0, 255, (4, 6)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        patches = np.asarray(coarse, np.float32)[..., None] / 255.0 - 0.5
        haze = np.clip(self.density + 0.25 * patches, 0, 0.97)
        airlight = rng.uniform(200, 235)
        return np.clip(image.astype(np.float32) * (1 - haze) + airlight * haze, 0, 255).astype(np.uint8)


def _fog(s: int):
    return _Haze(s)


def _defocus(s: int):
    A = _lazy()
    r = [2, 3, 5, 7, 10][s - 1]
    return A.Defocus(radius=(r, r), alias_blur=(0.2, 0.2), p=1.0)


def _motion(s: int):
    A = _lazy()
    k = [5, 9, 15, 21, 29][s - 1]
    return A.MotionBlur(blur_limit=(k, k), allow_shifted=False, p=1.0)


def _gauss_noise(s: int):
    A = _lazy()
    sd = [0.04, 0.07, 0.1, 0.14, 0.2][s - 1]
    return A.GaussNoise(std_range=(sd, sd), p=1.0)


def _shot_noise(s: int):
    A = _lazy()
    sc = [0.1, 0.2, 0.35, 0.55, 0.8][s - 1]
    return A.ShotNoise(scale_range=(sc, sc), p=1.0)


def _jpeg(s: int):
    A = _lazy()
    q = [25, 18, 12, 8, 5][s - 1]
    return A.ImageCompression(quality_range=(q, q), p=1.0)


def _low_res(s: int):
    A = _lazy()
    import cv2

    f = [0.5, 0.33, 0.22, 0.15, 0.1][s - 1]
    return A.Downscale(
        scale_range=(f, f), interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}, p=1.0
    )


CORRUPTIONS: dict[str, Callable[[int], object]] = {
    "mud": _mud,
    "rain": _rain,
    "dark": _dark,
    "night_ir": _night_ir,
    "overexposure": _overexposure,
    "glare": _glare,
    "fog": _fog,
    "defocus_blur": _defocus,
    "motion_blur": _motion,
    "gaussian_noise": _gauss_noise,
    "shot_noise": _shot_noise,
    "jpeg": _jpeg,
    "low_resolution": _low_res,
}


def seed_for(*parts) -> int:
    """A stable 32-bit seed from any labels (Python's own hash changes between runs)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little")


def to_work_size(image: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    w, h = image.size
    scale = side / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)


def corrupt(image: Image.Image, name: str, severity: int, seed: int = 0) -> Image.Image:
    """``image`` (RGB) with corruption ``name`` at ``severity`` 1–5; the same seed gives the same result."""
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1-5, got {severity}")
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    transform = CORRUPTIONS[name](severity)
    if isinstance(transform, (_MudBlobs, _Haze)):
        return Image.fromarray(transform(arr, np.random.default_rng(seed)))
    pipeline = _lazy().Compose([transform], seed=seed)
    return Image.fromarray(pipeline(image=arr)["image"])
