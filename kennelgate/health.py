"""Frame health gate: is this camera frame fit to decide on at all?

Runs before the encoder and costs about a millisecond: the frame is measured once on a small
grey copy, then judged against thresholds. An unhealthy frame is never classified; the door
stays shut and the fault is named (no_signal, dark, bright, occlusion, blur, frozen).
Thresholds come from ``kennelgate eval --corruptions`` (clean photos vs corrupted copies) and
can be overridden per kennel.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from scipy import ndimage

OK = "ok"
FAULTS = ("no_signal", "dark", "bright", "occlusion", "blur", "frozen")
ANALYSIS_SIDE = 256  # short side of the grey copy every measure is taken on
_BLOCK = 16  # px; texture is judged per block of the grey copy


class HealthThresholds(BaseModel):
    """When a frame counts as faulty. Defaults: calibrated in docs/corruptions.md."""

    enabled: bool = True
    no_signal_uniform: float = Field(0.95, description="share of pixels within ±6 grey levels of the median")
    dark_p95: float = Field(48.0, description="95th-percentile brightness (0–255) below this = too dark")
    bright_p5: float = Field(200.0, description="5th-percentile brightness above this = washed out")
    bright_clipped: float = Field(0.6, description="share of clipped (≥250) pixels above this = washed out")
    occlusion_area: float = Field(0.6, description="largest connected textureless area, share of the frame")
    occlusion_block_std: float = Field(5.0, description="a block with less grey-level spread than this is textureless")
    blur: float = Field(0.65, description="blur effect (0 sharp … 1 blurred, Crete et al.) above this = blurred")
    frozen_frames: int = Field(40, description="this many identical frames in a row = frozen feed (2 s at 20 fps)")
    frozen_diff: float = Field(0.1, description="mean grey difference (96x72 thumbnail) below this = identical frame")

    def merged(self, overrides: Optional[dict]) -> "HealthThresholds":
        return self.model_copy(update=overrides) if overrides else self


@dataclass(frozen=True)
class FrameStats:
    p5: float
    p95: float
    clipped: float
    uniform: float
    blur: float
    occlusion: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Health:
    fault: str = OK  # "ok" or one of FAULTS
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.fault == OK


def grey_copy(image: Image.Image, side: int = ANALYSIS_SIDE) -> np.ndarray:
    w, h = image.size
    scale = side / min(w, h)
    small = image.convert("L").resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(small, dtype=np.float32)


def _blur(g: np.ndarray) -> float:
    """How little re-blurring changes the frame (Crete et al. 2007): 0 sharp, 1 fully blurred."""
    from skimage.measure import blur_effect

    return float(blur_effect(g, h_size=11))


def _occlusion(g: np.ndarray, block_std: float) -> float:
    """Largest connected area of textureless mid-tone blocks (mud, a hand, a cover on the lens).

    Near-black and near-white blocks are left to the dark/bright checks: a dark background is
    not an occlusion.
    """
    h, w = (g.shape[0] // _BLOCK) * _BLOCK, (g.shape[1] // _BLOCK) * _BLOCK
    blocks = g[:h, :w].reshape(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).transpose(0, 2, 1, 3)
    std = blocks.std(axis=(2, 3))
    mean = blocks.mean(axis=(2, 3))
    flat = (std < block_std) & (mean > 25) & (mean < 230)
    labels, n = ndimage.label(flat)
    if n == 0:
        return 0.0
    return float(np.bincount(labels.ravel())[1:].max() / flat.size)


def measure(image: Image.Image, block_std: float = HealthThresholds().occlusion_block_std) -> FrameStats:
    """The frame's statistics, on a grey copy of fixed size."""
    g = grey_copy(image)
    p5, p95 = np.percentile(g, [5, 95])
    median = float(np.median(g))
    stats = FrameStats(
        p5=float(p5), p95=float(p95), clipped=float((g >= 250).mean()),
        uniform=float((np.abs(g - median) <= 6).mean()), blur=_blur(g),
        occlusion=_occlusion(g, block_std),
    )
    return stats


def judge(s: FrameStats, t: HealthThresholds) -> Health:
    """The first fault found, most basic first (a black frame is "no signal", not "dark")."""
    if not t.enabled:
        return Health()
    # Flat and without even a dim scene's spread: a dark room still has 10+ grey levels of range.
    if s.uniform >= t.no_signal_uniform and s.p95 - s.p5 <= 12:
        return Health("no_signal", f"{100 * s.uniform:.0f}% of the frame is one flat colour")
    if s.p95 < t.dark_p95:
        return Health("dark", f"too dark: 95% of pixels below {s.p95:.0f}/255")
    if s.p5 > t.bright_p5 or s.clipped > t.bright_clipped:
        return Health("bright", f"washed out: {100 * s.clipped:.0f}% clipped, darkest 5% above {s.p5:.0f}/255")
    if s.occlusion > t.occlusion_area:
        return Health("occlusion", f"lens blocked: {100 * s.occlusion:.0f}% of the frame is a textureless patch")
    if s.blur > t.blur:
        return Health("blur", f"blurred: blur effect {s.blur:.2f} > {t.blur:.2f}")
    return Health()


def check(image: Image.Image, thresholds: HealthThresholds) -> Health:
    if not thresholds.enabled:
        return Health()
    return judge(measure(image, thresholds.occlusion_block_std), thresholds)


class FreezeDetector:
    """Counts identical frames in a row for one camera: a live sensor is never perfectly still.

    Works on the motion thumbnail (``kennelgate.motion``), which every frame gets, including
    those the motion gate lets skip the rest of the pipeline.
    """

    def __init__(self) -> None:
        self._last: Optional[np.ndarray] = None
        self._run = 0
        self._lock = threading.Lock()

    def update(self, thumb: np.ndarray, t: HealthThresholds) -> Health:
        if not t.enabled:
            return Health()
        with self._lock:
            same = self._last is not None and self._last.shape == thumb.shape and float(
                np.abs(self._last - thumb).mean()
            ) < t.frozen_diff
            self._run = self._run + 1 if same else 0
            self._last = thumb
            run = self._run
        if run + 1 >= t.frozen_frames:
            return Health("frozen", f"frozen feed: {run + 1} identical frames in a row")
        return Health()


def check_stream(image: Image.Image, thresholds: HealthThresholds, freeze: FreezeDetector) -> Health:
    """``check`` plus the frozen-feed test, for frames of one camera in order."""
    from kennelgate.motion import grey_thumb

    frozen = freeze.update(grey_thumb(image), thresholds)
    return frozen if not frozen.ok else check(image, thresholds)
