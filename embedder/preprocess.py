"""RGB image → normalised NCHW float32, following a model's ``PreprocessSpec``."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from embedder.spec import PreprocessSpec

_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def draft_size(spec: PreprocessSpec) -> int:
    """Smallest short side the JPEG decoder may scale down to without losing detail we use."""
    return int(round(spec.input_size / spec.crop_pct))


def resize_and_crop(img: Image.Image, spec: PreprocessSpec) -> Image.Image:
    size = spec.input_size
    resample = _RESAMPLE[spec.interpolation]
    w, h = img.size
    if spec.resize == "squash":
        return img.resize((size, size), resample)
    if spec.resize == "letterbox":
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (size, size), (128, 128, 128))
        canvas.paste(img.resize((nw, nh), resample), ((size - nw) // 2, (size - nh) // 2))
        return canvas
    short = draft_size(spec)
    scale = short / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    # reducing_gap lets Pillow shrink big frames in cheap integer steps before the final filter.
    img = img.resize((nw, nh), resample, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def normalise(batch: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``(N, S, S, 3)`` RGB pixels (already resized and cropped) → the network's ``(N, 3, S, S)`` float32."""
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32) * 255.0)
    out = batch.astype(np.float32)
    out -= mean
    out *= inv_std
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def to_tensor(images: Sequence[Image.Image], spec: PreprocessSpec) -> np.ndarray:
    """Batch of RGB images → ``(N, 3, S, S)`` float32."""
    return normalise(np.stack([np.asarray(resize_and_crop(im, spec)) for im in images]), spec)
