"""Visit-level door evaluation: does the right animal get in, and does any wrong one?

A door is judged on visits, not frames: an animal stands at the door for a second or two while
the camera sends 20 frames a second. Each test photo becomes one visit, a burst of live frames
of the same still scene (small shifts, exposure drift, sensor noise, JPEG re-encoding: what a
camera sends of an animal that does not move much). Those frames are far from independent, as in
life: an animal refused in one frame is usually refused in the next, so a door rule that looks
safe per frame may keep an animal out for the whole visit.

Every frame goes through the service's own path: the frame pipeline with a camera per visit
(motion gating, frozen feed, health gate, encoder, decision) and the service's door window.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from index.folders import OTHER
from kennelgate.door import DoorWindow, WindowPolicy
from kennelgate.health import HealthThresholds
from kennelgate.motion import MotionGate
from kennelgate.pipeline import Camera, FramePipeline

FPS = 20


def live_frame(image: Image.Image, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """One camera frame of a still scene: a slightly shifted crop, exposure drift, sensor noise, JPEG."""
    w, h = image.size
    f = rng.uniform(0.93, 1.0)
    cw, ch = int(w * f), int(h * f)
    x, y = int(rng.uniform(0, w - cw + 1)), int(rng.uniform(0, h - ch + 1))
    frame = image.crop((x, y, x + cw, y + ch)).resize(size, Image.BILINEAR)
    frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.9, 1.1))
    arr = np.asarray(frame, np.float32) + rng.normal(0, rng.uniform(1.0, 4.0), (size[1], size[0], 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(70, 92)))
    return buf.getvalue()


def live_batches(images: Sequence[Image.Image], frames: int, seed: int = 0,
                 size: tuple[int, int] = (426, 320)) -> Iterator[list[bytes]]:
    """Frame j of every visit, for j in 0..frames-1: one camera (random stream) per visit, so the
    same seed gives the same frames."""
    rngs = [np.random.default_rng([seed, i]) for i in range(len(images))]
    for _ in range(frames):
        yield [live_frame(im, rng, size) for im, rng in zip(images, rngs)]


@dataclass
class VisitResult:
    truth: str  # the animal's species, or "other" for one the gallery does not know
    opened: Optional[str] = None  # the species whose door opened first, if any
    opened_at: Optional[int] = None  # the frame (0-based) at which it opened
    frames_accepted_right: int = 0  # frames accepted as the right species
    frames: int = 0


@dataclass
class VisitSummary:
    visits: int
    known_visits: int
    unknown_visits: int
    frames_per_visit: int
    window: dict
    admitted: dict[str, float] = field(default_factory=dict)  # right animals admitted by frame N (known visits)
    wrong_open_known: float = 0.0  # known animals whose visit opened another species' door
    wrong_open_unknown: float = 0.0  # unknown animals whose visit opened any door
    frame_right_accept: float = 0.0  # frames of known animals accepted as the right species
    frame_never_admitted: float = 0.0  # known visits with not one frame accepted right
    per_species: dict[str, dict] = field(default_factory=dict)
    wrong_opens: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def run_visits(
    pipeline: FramePipeline,
    images: Sequence[Image.Image],
    truths: Sequence[str],
    ids: Sequence[str],
    known: set[str],
    policy: WindowPolicy,
    motion: Callable[[], MotionGate],
    frames: int = 8,
    health: HealthThresholds = HealthThresholds(),
    seed: int = 0,
    size: tuple[int, int] = (426, 320),
    on_progress: Optional[Callable[[int], None]] = None,
    batches: Optional[Iterable[list[bytes]]] = None,
) -> tuple[list[VisitResult], VisitSummary]:
    """Each image one visit of ``frames`` frames at 20 fps. Frame j of every visit is run
    together, so visits share encoder batches; each visit keeps its own camera and door.
    ``batches``: the frames already made by ``live_batches`` (a study reuses them across trials)."""
    truth = [t if t in known else OTHER for t in truths]
    cameras = [Camera(motion()) for _ in images]
    doors = [DoorWindow(policy, frozenset(known)) for _ in images]
    results = [VisitResult(t, frames=frames) for t in truth]
    for j, batch in enumerate(batches if batches is not None else live_batches(images, frames, seed, size)):
        for i, r in enumerate(pipeline.run(batch, cameras, health)):
            v = results[i]
            if r.accepted and r.species == v.truth:
                v.frames_accepted_right += 1
            opened, _ = doors[i].add(j / FPS, r.vote)
            if opened and v.opened is None:
                v.opened, v.opened_at = r.vote, j
        if on_progress:
            on_progress(1)
    return results, summarise(results, ids, frames, policy)


def summarise(results: Sequence[VisitResult], ids: Sequence[str], frames: int, policy: WindowPolicy) -> VisitSummary:
    kn = [v for v in results if v.truth != OTHER]
    un = [v for v in results if v.truth == OTHER]
    marks = sorted({m for m in (frames, FPS, 2 * FPS) if m <= frames})
    s = VisitSummary(
        visits=len(results), known_visits=len(kn), unknown_visits=len(un), frames_per_visit=frames,
        window={"k": policy.k, "n": policy.n, "seconds": policy.seconds},
    )
    for m in marks:
        label = f"{m} frames ({m / FPS:g} s)"
        s.admitted[label] = _share(kn, lambda v: v.opened == v.truth and v.opened_at < m)
    s.wrong_open_known = _share(kn, lambda v: v.opened is not None and v.opened != v.truth)
    s.wrong_open_unknown = _share(un, lambda v: v.opened is not None)
    s.frame_right_accept = sum(v.frames_accepted_right for v in kn) / max(1, frames * len(kn))
    s.frame_never_admitted = _share(kn, lambda v: v.frames_accepted_right == 0)
    for name in sorted({v.truth for v in results}):
        rows = [v for v in results if v.truth == name]
        s.per_species[name] = {
            "visits": len(rows),
            "admitted": _share(rows, lambda v: v.opened == v.truth) if name != OTHER else None,
            "wrong_open": _share(rows, lambda v: v.opened is not None and v.opened != v.truth),
        }
    s.wrong_opens = [
        {"id": i, "truth": v.truth, "opened_for": v.opened, "frame": v.opened_at}
        for i, v in zip(ids, results) if v.opened is not None and v.opened != v.truth
    ]
    return s


def _share(rows, pred) -> float:
    return float(np.mean([pred(v) for v in rows])) if rows else float("nan")
