"""Motion gating: a frame that shows the same scene as the last classified one skips the encoder.

Most of a kennel camera's day is an empty doorway. Each frame is first decoded at a fraction
of its size (JPEG DCT scaling: a 640×480 frame costs well under a millisecond in grey at 1/8
scale) into a small thumbnail; only when it differs enough from the thumbnail of the last frame
the encoder saw does the frame go through the full pipeline. The comparison is against that
anchor, not the previous frame, so slow changes add up and are seen. The same thumbnail feeds
the frozen-feed check.

A scene that has stayed still for a while and whose answer opened nothing is only looked at
every few frames (idle sampling): the frames in between reuse the anchor's answer unseen, and
the forced re-check comes as many times less often. That can only delay an opening by a few
frames, never cause one, since the reused vote is a vote to stay shut; an answer that admitted
an animal is never reused unseen.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from PIL import Image

from embedder.images import ImageError, ImageLimits, open_image

THUMB_SIZE = (96, 72)  # the same for every frame of a camera, whatever its resolution


def thumbnail(data: bytes, limits: ImageLimits = ImageLimits()) -> tuple[np.ndarray, Optional[Image.Image]]:
    """A small grey copy of an encoded frame, decoded at reduced scale where the format allows.

    Returns ``(thumbnail, image)``: ``image`` is the fully decoded RGB frame when a format without
    reduced-scale decoding (PNG…) had to be decoded whole, so the caller need not decode it twice.
    """
    if len(data) > limits.max_bytes:
        raise ImageError(f"file too large ({len(data) / 1e6:.1f} MB > {limits.max_bytes / 1e6:.0f} MB)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format == "JPEG":
                w, h = probe.size
                if w * h > limits.max_pixels:
                    raise ImageError(f"image too large ({w}x{h})")
                probe.draft("L", THUMB_SIZE)  # DCT scaling: never below the thumbnail's size
                probe.load()
                small = probe.convert("L")
            else:
                small = None
    except ImageError:
        raise
    except Exception:  # noqa: BLE001 - anything unusual goes the safe, full-decode way
        small = None
    if small is not None:
        return grey_thumb(small), None
    image = open_image(data, limits)
    return grey_thumb(image), image


def grey_thumb(image: Image.Image) -> np.ndarray:
    """The thumbnail of an already decoded frame."""
    return np.asarray(image.convert("L").resize(THUMB_SIZE, Image.BILINEAR, reducing_gap=2.0), dtype=np.float32)


@dataclass
class Anchor:
    thumb: np.ndarray
    frame_id: str
    outcome: object  # what the full pipeline answered for the anchor frame


class MotionGate:
    """Per camera: skip frames within ``threshold`` grey levels (mean abs) of the anchor frame,
    and classify at least every ``max_skip`` frames anyway.

    ``idle_after`` unchanged frames in a row make the scene idle. While it is idle and the
    anchor's answer opens nothing (``opens_nothing(outcome)``: the caller knows the kennel), only
    every ``idle_every``-th frame is looked at, and the forced re-check comes ``idle_every`` times
    less often: reusing a closed answer can delay an opening, never cause one.
    """

    def __init__(
        self, threshold: float, max_skip: int, idle_after: int = 0, idle_every: int = 1,
        opens_nothing: Callable[[object], bool] = lambda outcome: False,
    ) -> None:
        self.threshold = threshold
        self.max_skip = max_skip
        self.idle_after = idle_after
        self.idle_every = max(1, idle_every)
        self.opens_nothing = opens_nothing
        self._anchor: Optional[Anchor] = None
        self._skipped = 0  # frames answered from the anchor since it was classified
        self._still = 0  # unchanged frames in a row (looked at)
        self._unseen = 0  # frames answered unseen since the last one looked at
        self._lock = threading.Lock()

    def _idle(self) -> bool:
        a = self._anchor
        return a is not None and self.idle_every > 1 and self._still >= self.idle_after and self.opens_nothing(a.outcome)

    def _limit(self) -> int:
        return self.max_skip * self.idle_every if self._idle() else self.max_skip

    def unseen(self) -> Optional[Anchor]:
        """The anchor, when this frame may be answered without decoding it at all (idle sampling)."""
        with self._lock:
            if (
                self.threshold <= 0 or not self._idle() or self._skipped >= self._limit()
                or self._unseen >= self.idle_every - 1
            ):
                self._unseen = 0
                return None
            self._unseen += 1
            self._skipped += 1
            return self._anchor

    def unchanged(self, thumb: np.ndarray) -> Optional[Anchor]:
        """The anchor to reuse when the scene has not changed; None when the frame must be classified."""
        with self._lock:
            a = self._anchor
            if a is None or self.threshold <= 0 or self._skipped >= self._limit():
                return None
            if float(np.abs(thumb - a.thumb).mean()) >= self.threshold:
                self._still = 0
                return None
            self._skipped += 1
            self._still += 1
            return a

    def anchor(self, thumb: np.ndarray, frame_id: str, outcome: object) -> None:
        with self._lock:
            if self._anchor is None or float(np.abs(thumb - self._anchor.thumb).mean()) >= self.threshold:
                self._still = 0  # a new scene; a periodic re-check of the same one keeps it idle
            self._anchor = Anchor(thumb, frame_id, outcome)
            self._skipped = 0

    def reset(self) -> None:
        with self._lock:
            self._anchor = None
            self._skipped = self._still = self._unseen = 0
