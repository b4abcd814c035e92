"""A cheap wide-angle night camera, simulated: what a kennel's own camera makes of an animal
that the gallery's internet photos never showed it that way (the field loop's test bed).

Greyscale infrared with a green cast, a small sensor (low resolution, noise), barrel distortion
and vignetting of a wide lens, and JPEG compression. Each visit gets one camera (``seed``);
its frames differ by a small jitter, as a live animal's would.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIZE = (320, 240)  # the camera's frame


def _fit(image: Image.Image, jitter: np.ndarray) -> Image.Image:
    """Centre-crop to 4:3 (with a small shift and zoom for a live animal), then the frame size."""
    w, h = image.size
    target = SIZE[0] / SIZE[1]
    cw, ch = (w, w / target) if w / h < target else (h * target, h)
    zoom = 1.0 - 0.08 * jitter[0]
    cw, ch = cw * zoom, ch * zoom
    x0 = (w - cw) / 2 + (jitter[1] - 0.5) * 0.08 * w
    y0 = (h - ch) / 2 + (jitter[2] - 0.5) * 0.08 * h
    x0, y0 = min(max(0.0, x0), w - cw), min(max(0.0, y0), h - ch)
    return image.crop((int(x0), int(y0), int(x0 + cw), int(y0 + ch))).resize(SIZE, Image.BILINEAR)


def _barrel(a: np.ndarray, k: float) -> np.ndarray:
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = (xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)
    r2 = x * x + y * y
    f = 1 + k * r2
    sx = np.clip((x / f) * (w / 2) + w / 2, 0, w - 1).astype(np.int32)  # wide lens: the edges bend in
    sy = np.clip((y / f) * (h / 2) + h / 2, 0, h - 1).astype(np.int32)
    out = a[sy, sx]
    return out * (1 - 0.45 * np.clip(r2 / 2, 0, 1))[..., None]  # vignetting


def night_camera(image: Image.Image, seed: int, frame: int = 0) -> bytes:
    """One JPEG frame of ``image`` through visit ``seed``'s camera (frame ``frame`` of the visit)."""
    rng = np.random.default_rng([seed, frame])
    visit = np.random.default_rng(seed)
    img = _fit(image.convert("RGB"), rng.random(3))
    a = np.asarray(img, np.float32)
    gain = 0.55 + 0.25 * visit.random()  # a dark scene under a cheap lamp
    grey = a @ np.array([0.299, 0.587, 0.114], np.float32)
    a = 0.45 * a + 0.55 * grey[..., None]  # washed-out colour
    rgb = a * gain * np.array([0.80, 1.0, 0.70], np.float32) + np.array([8, 24, 6], np.float32)  # green cast
    rgb = _barrel(rgb, 0.28)
    rgb += rng.normal(0, 6, rgb.shape)  # sensor noise
    small = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize((224, 168), Image.BILINEAR)
    out = io.BytesIO()
    small.resize(SIZE, Image.BILINEAR).save(out, "JPEG", quality=50)
    return out.getvalue()
