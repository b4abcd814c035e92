"""Safe image loading: every way a file can be bad becomes an ``ImageError`` with a reason.

A kennel frame or an uploaded photo is untrusted input, so we check the declared size before
decoding (decompression bombs), decode fully (truncation shows only then), and normalise every
mode Pillow can hand us (CMYK, 16-bit, alpha, palette, EXIF rotation) to 8-bit RGB.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, Path, bytes, Image.Image]

DEFAULT_MAX_PIXELS = 50_000_000  # a 6000x4000 camera still fits; bombs are far larger
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MIN_SIDE = 16  # below this nothing can be recognised: refuse rather than guess
# Alpha is composited on mid grey: a black background (naive convert) reads as "darkness".
_ALPHA_BACKGROUND = (128, 128, 128)


class ImageError(ValueError):
    """A file that cannot be used as an image, with a reason a person can act on."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    min_side: int = DEFAULT_MIN_SIDE


def _read_bytes(source: Union[str, Path, bytes], limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"not a file: {path}")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageError(f"file too large ({size / 1e6:.1f} MB > {limits.max_bytes / 1e6:.0f} MB)")
        data = path.read_bytes()
    if not data:
        raise ImageError("empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageError(f"file too large ({len(data) / 1e6:.1f} MB > {limits.max_bytes / 1e6:.0f} MB)")
    return data


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bits instead of letting values clip at 255.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr8 = ((arr - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(
    source: ImageSource,
    limits: ImageLimits = ImageLimits(),
    draft_size: int | None = None,
) -> Image.Image:
    """Decode ``source`` into an upright 8-bit RGB image or raise ``ImageError``.

    ``draft_size`` lets JPEG decode at a reduced scale (libjpeg DCT scaling) when the image is
    much larger than the model needs; it never goes below ``draft_size`` on the short side.
    """
    if isinstance(source, Image.Image):
        img = source
        w, h = img.size
        if w * h > limits.max_pixels:
            raise ImageError(f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP > {limits.max_pixels / 1e6:.0f} MP)")
    else:
        data = _read_bytes(source, limits)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                w, h = img.size
                if w * h > limits.max_pixels:
                    raise ImageError(
                        f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP > {limits.max_pixels / 1e6:.0f} MP);"
                        " refused as a possible decompression bomb"
                    )
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError("not an image (unrecognised format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"refused as a possible decompression bomb: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            msg = str(exc)
            if "truncated" in msg:
                raise ImageError("image data is truncated (incomplete file)") from None
            raise ImageError(f"corrupt image data: {msg or type(exc).__name__}") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not cost the frame; keep stored orientation
        pass
    w, h = img.size
    if min(w, h) < limits.min_side:
        raise ImageError(f"image too small ({w}x{h}); need at least {limits.min_side} px per side")
    try:
        return _to_rgb(img)
    except (OSError, ValueError) as exc:
        raise ImageError(f"unsupported image mode {img.mode!r}: {exc}") from None
