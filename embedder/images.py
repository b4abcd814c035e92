"""Safe image loading: every way a file can be bad becomes an ``ImageError`` with a reason.

A kennel frame or an uploaded photo is untrusted input, so we check the declared size before
decoding (decompression bombs), decode fully (truncation shows only then), and normalise every
mode Pillow can hand us (CMYK, 16-bit, alpha, palette, EXIF rotation) to 8-bit RGB.
"""

from __future__ import annotations

import ctypes
import io
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, Path, bytes, Image.Image]

DEFAULT_MAX_PIXELS = 50_000_000  # a 6000x4000 camera still fits; bombs are far larger
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MIN_SIDE = 16  # below this nothing can be recognised: refuse rather than guess
# Decoded memory, not file size, is what a small hostile file costs: a 95 KB 16-bit PNG of 49 MP
# decodes to ~100 MB. Above this estimate an image is refused; above LARGE_DECODE_BYTES it waits
# for the one large-decode slot, so N concurrent bombs cost one bomb's memory, not N.
DEFAULT_MAX_DECODE_BYTES = 256 * 1024 * 1024
LARGE_DECODE_BYTES = 48 * 1024 * 1024
LARGE_DECODE_WAIT_S = 2.0
DEFAULT_MAX_SIDE = 4096  # decoded images are reduced (integer factor) to at most this long side
# Bytes per pixel Pillow allocates for each mode (RGB is stored as 4 bytes a pixel).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 4, "PA": 4, "La": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Alpha is composited on mid grey: a black background (naive convert) reads as "darkness".
_ALPHA_BACKGROUND = (128, 128, 128)


class ImageError(ValueError):
    """A file that cannot be used as an image, with a reason a person can act on."""


class DecoderBusy(ImageError):
    """A large image waited too long for the large-decode slot (the file may be fine: retry)."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    min_side: int = DEFAULT_MIN_SIDE
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    max_side: int = DEFAULT_MAX_SIDE


_large_decode = threading.Semaphore(1)


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """What Pillow will allocate to hold an image of ``mode`` and ``size``, from the header alone."""
    return size[0] * size[1] * _MODE_BYTES.get(mode, 4)


@contextmanager
def _decode_slot(estimate: int) -> Iterator[None]:
    """Large decodes one at a time; memory goes back to the system after each."""
    if estimate < LARGE_DECODE_BYTES:
        yield
        return
    if not _large_decode.acquire(timeout=LARGE_DECODE_WAIT_S):
        raise DecoderBusy("server busy decoding other large images; send a smaller frame or retry")
    try:
        yield
    finally:
        _large_decode.release()
        _trim_heap()


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return None


_LIBC = _libc()


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise: a bomb's memory stays)."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


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


_ROWS = 256  # rows converted at a time: no full-frame wide-type copy of a large image


def _grey16_to_8(img: Image.Image) -> Image.Image:
    """16-bit grey → 8-bit by the high byte, a band of rows at a time."""
    w, h = img.size
    out = np.empty((h, w), np.uint8)
    for top in range(0, h, _ROWS):
        band = np.asarray(img.crop((0, top, w, min(h, top + _ROWS))))
        out[top : top + len(band)] = (band.astype(np.uint16) >> 8).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _scaled_to_8(img: Image.Image) -> Image.Image:
    """32-bit int or float grey → 8-bit, stretched between its min and max, a band at a time."""
    lo, hi = img.getextrema()
    span = max(float(hi) - float(lo), 1e-12)
    w, h = img.size
    out = np.empty((h, w), np.uint8)
    for top in range(0, h, _ROWS):
        band = np.asarray(img.crop((0, top, w, min(h, top + _ROWS))), dtype=np.float32)
        out[top : top + len(band)] = np.clip((band - float(lo)) / span * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """Reduce by an integer factor (box filter, cheap) so the long side is at most ``max_side``."""
    factor = -(-max(img.size) // max_side)
    if factor <= 1:
        return img
    if img.mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F", "RGBa", "La"):
        img = _grey16_to_8(img) if img.mode.startswith("I;16") else img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    return img.reduce(factor)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        return _grey16_to_8(img).convert("RGB")
    if mode in ("I", "F"):
        return _scaled_to_8(img).convert("RGB")
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
                estimate = decoded_bytes(img.mode, img.size)
                if estimate > limits.max_decode_bytes:
                    raise ImageError(
                        f"image too large to decode ({w}x{h} {img.mode} needs {estimate / 2**20:.0f} MB "
                        f"> {limits.max_decode_bytes / 2**20:.0f} MB); send a smaller image"
                    )
                with _decode_slot(estimate):
                    img.load()
                    img = _shrink(img, limits.max_side)
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
