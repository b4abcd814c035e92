"""A frame's statistics for the health gate, measured once on a small copy (a few ms).

Exposure (grey-level percentiles, clipped and near-black shares, saturation), sharpness (image
gradients in four directions, multi-scale Laplacian energy, the steepest edge of each block
relative to its contrast — a blurred edge is wide whatever the scene), and smooth regions (the
largest connected patch without texture, its colour, shape and how sharply it stands out from
its surroundings — mud on a lens is a smooth, soft-edged blob). The learned detectors read
them all; the rules read a few by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

ANALYSIS_SIDE = 256  # short side of the copy every statistic is measured on
_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
_DIRECTIONS = ("x", "y", "d1", "d2")

FEATURE_NAMES: tuple[str, ...] = (
    *(f"p{q}" for q in _PERCENTILES), "uniform", "clip250", "clip240", "dark5", "sat_mean", "std",
    "aniso", "grad", "lap1", "lap2", "lap4", "lap8", "r12", "r24", "r48", "strong",
    *(f"sharp{q}_{d}" for d in _DIRECTIONS for q in (90, 50)), "sharp_min", "sharp_max", "sharp_ratio",
    *(f"flat{t}" for t in (3, 5, 8)), *(f"flatcc{t}" for t in (3, 5, 8)),
    *(f"smooth{t}" for t in (1, 2, 4)), *(f"smoothcc{t}" for t in (1, 2, 4)), "lapblock_p10", "lapblock_p50", "lapblock_p90",
    "smooth_r", "smooth_g", "smooth_b", "smooth_rb",
    *(f"s8{k}_{t}" for t in (2, 4) for k in ("", "cc", "n3", "r", "rb", "gb", "fill", "edge")),
)
_INDEX = {n: i for i, n in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class FrameFeatures:
    values: np.ndarray  # float64, in FEATURE_NAMES order

    def __getitem__(self, name: str) -> float:
        return float(self.values[_INDEX[name]])

    def as_dict(self) -> dict[str, float]:
        return {n: round(float(v), 4) for n, v in zip(FEATURE_NAMES, self.values)}


def _small_copy(image: Image.Image) -> Image.Image:
    w, h = image.size
    scale = ANALYSIS_SIDE / min(w, h)
    return image.convert("RGB").resize(
        (max(16, round(w * scale)), max(16, round(h * scale))), Image.BILINEAR, reducing_gap=2.0
    )


def _block_colours(rgb: Image.Image, b: int) -> np.ndarray:
    """Mean colour of each whole ``b``×``b`` block (Pillow's box reduction, in C)."""
    w, h = (rgb.width // b) * b, (rgb.height // b) * b
    return np.asarray(rgb.crop((0, 0, w, h)).reduce(b), np.float32)


def _blocks(x: np.ndarray, b: int) -> np.ndarray:
    """``(rows, cols, b*b)`` view of the whole ``b``×``b`` blocks of a 2-D array."""
    h, w = (x.shape[0] // b) * b, (x.shape[1] // b) * b
    return x[:h, :w].reshape(h // b, b, w // b, b).swapaxes(1, 2).reshape(h // b, w // b, b * b)


def _laplacian(x: np.ndarray) -> np.ndarray:
    return np.abs(4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:])


def _largest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the connected parts of ``mask`` and their sizes (empty if none)."""
    labels, n = ndimage.label(mask)
    return labels, (np.bincount(labels.ravel())[1:] if n else np.zeros(0, np.int64))


def frame_features(image: Image.Image) -> FrameFeatures:
    rgb = _small_copy(image)
    grey = rgb.convert("L")
    g = np.asarray(grey, np.float32)
    f: dict[str, float] = {}
    # Exposure: percentiles from the grey histogram (no sort needed for 8-bit values).
    hist = np.bincount(np.asarray(grey).ravel(), minlength=256)
    cdf = np.cumsum(hist) / g.size
    for q in _PERCENTILES:
        f[f"p{q}"] = float(np.searchsorted(cdf, q / 100.0))
    median = f["p50"]
    f["uniform"] = float(hist[max(0, int(median) - 6) : int(median) + 7].sum() / g.size)
    r, gr, b = (np.asarray(c) for c in rgb.split())
    mx, mn = np.maximum(np.maximum(r, gr), b), np.minimum(np.minimum(r, gr), b)
    f["clip250"] = float((mx >= 250).mean())
    f["clip240"] = float(1.0 - cdf[239])
    f["dark5"] = float(cdf[5])
    f["sat_mean"] = float(((mx - mn) / np.maximum(mx, 1).astype(np.float32)).mean())
    std = float(g.std()) + 1e-3
    f["std"] = std

    # Sharpness: gradients in four directions, over the same (h-1)×(w-1) grid.
    h, w = g.shape[0] - 1, g.shape[1] - 1
    grads = (
        np.abs(g[:h, 1:] - g[:h, :w]), np.abs(g[1:, :w] - g[:h, :w]),
        np.abs(g[1:, 1:] - g[:h, :w]), np.abs(g[1:, :w] - g[:h, 1:]),
    )
    energy = np.array([d.mean() for d in grads]) + 1e-3
    f["aniso"] = float(np.log(energy.max() / energy.min()))  # motion blur flattens one direction
    f["grad"] = float(np.log(energy.mean() / std))
    g2, g4, g8 = (np.asarray(grey.reduce(k), np.float32) for k in (2, 4, 8))
    e = [float(_laplacian(x).mean()) for x in (g, g2, g4, g8)]
    for name, v in zip(("lap1", "lap2", "lap4", "lap8"), e):
        f[name] = float(np.log(v / std + 1e-4))
    f["r12"], f["r24"], f["r48"] = (float(np.log((e[i] + 1e-3) / (e[i + 1] + 1e-3))) for i in range(3))
    # Edge width: per 16-px block, the steepest step over the block's range (1 = a one-pixel edge).
    gb = _blocks(g[:h, :w], 16)
    spread = gb.max(2) - gb.min(2)
    strong = spread > 24
    f["strong"] = float(strong.mean())
    sharp90 = []
    for name, d in zip(_DIRECTIONS, grads):
        s = (_blocks(d, 16).max(2) / np.maximum(spread, 1.0))[strong] if strong.any() else np.zeros(1)
        f[f"sharp90_{name}"], f[f"sharp50_{name}"] = (float(v) for v in np.percentile(s, [90, 50]))
        sharp90.append(f[f"sharp90_{name}"])
    f["sharp_min"], f["sharp_max"] = min(sharp90), max(sharp90)
    f["sharp_ratio"] = f["sharp_min"] / max(f["sharp_max"], 1e-3)

    # Smooth regions on 16-px blocks: grey-level spread, and fine texture (Laplacian).
    bstd, bmean = gb.std(2), gb.mean(2)
    midtone = (bmean > 25) & (bmean < 230)
    for t in (3, 5, 8):
        flat = (bstd < t) & midtone
        f[f"flat{t}"] = float(flat.mean())
        _, sizes = _largest(flat)
        f[f"flatcc{t}"] = float(sizes.max() / flat.size) if sizes.size else 0.0
    lap_blocks = _blocks(_laplacian(g), 16).mean(2)
    for t in (1, 2, 4):
        smooth = lap_blocks < t
        f[f"smooth{t}"] = float(smooth.mean())
        _, sizes = _largest(smooth)
        f[f"smoothcc{t}"] = float(sizes.max() / smooth.size) if sizes.size else 0.0
    f["lapblock_p10"], f["lapblock_p50"], f["lapblock_p90"] = (float(v) for v in np.percentile(lap_blocks, [10, 50, 90]))
    rows, cols = lap_blocks.shape
    colour = _block_colours(rgb, 16)[:rows, :cols]
    smooth = lap_blocks < 2
    c = colour[smooth] if smooth.any() else np.full((1, 3), -1.0)
    f["smooth_r"], f["smooth_g"], f["smooth_b"] = (float(v) for v in c.mean(0))
    f["smooth_rb"] = float((c[:, 0] - c[:, 2]).mean())

    # The largest smooth patch on 8-px blocks: its size, colour, shape and contrast with its rim.
    g8b = _blocks(g, 8)
    s8, m8 = g8b.std(2), g8b.mean(2)
    a8 = _block_colours(rgb, 8)
    for t in (2, 4):
        patch = (s8 < t) & (m8 > 20) & (m8 < 235)
        f[f"s8_{t}"] = float(patch.mean())
        labels, sizes = _largest(patch)
        if not sizes.size:
            for k in ("cc", "n3", "r", "rb", "gb", "fill", "edge"):
                f[f"s8{k}_{t}"] = -1.0
            continue
        comp = labels == int(sizes.argmax()) + 1
        f[f"s8cc_{t}"] = float(sizes.max() / patch.size)
        f[f"s8n3_{t}"] = float((sizes > 0.03 * patch.size).sum())
        pc = a8[comp]
        f[f"s8r_{t}"] = float(pc[:, 0].mean())
        f[f"s8rb_{t}"] = float((pc[:, 0] - pc[:, 2]).mean())
        f[f"s8gb_{t}"] = float((pc[:, 1] - pc[:, 2]).mean())
        ys, xs = np.nonzero(comp)
        f[f"s8fill_{t}"] = float(comp.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
        rim = ndimage.binary_dilation(comp, iterations=2) & ~comp
        f[f"s8edge_{t}"] = float(s8[rim].mean()) if rim.any() else 0.0
    return FrameFeatures(np.array([f[n] for n in FEATURE_NAMES], np.float64))
