"""One frame's way to an answer, the same for every caller: the service, ``kennelgate classify``,
``kennelgate eval`` (single frames, camera corruptions, visits) all run frames through
``FramePipeline.run``.

    frame ─ thumbnail ─ frozen? ─ unchanged scene? (reuse the anchor's answer)
          ─ decode ─ health gate ─ encoder ─ gallery decision ─ cascade (unsure → big tier)
          ─ head count (accepted frames only: more animals than allowed, an animal beside the
            one found, or a person where the kennel says so keeps the door shut)
          → FrameResult

The pipeline does no I/O of its own (no log, no metrics, no door): the caller wraps it. The
encoder, decider and fault detector are handed in as callables, so a hot-swapped gallery or a
retrained detector is picked up on the next frame and tests can run it with a fake encoder.
Per-camera memory (motion anchor, frozen-feed run) lives in a ``Camera`` the caller keeps; a
frame without one (a photo file) gets none of the over-time checks.

Frames are processed in three steps so that batches share encoder runs: every frame is
prepared (decoded and checked, in threads), the frames that need it are embedded together, then
each is decided. A frame that fails any step fails closed: it gets an error or a fault and no
species.
"""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image

from embedder.detector import Detection, Detector, beside, crops
from embedder.images import ImageError, ImageLimits, ImageSource
from index.decision import Decider, Decision
from index.folders import OTHER
from kennelgate.health import FreezeDetector, Health, HealthThresholds, check
from kennelgate.health_features import FrameFeatures, frame_features
from kennelgate.health_detector import FaultDetector
from kennelgate.motion import Anchor, MotionGate, grey_thumb, thumbnail

Frame = Union[bytes, ImageSource, Image.Image]
Embed = Callable[[list[Image.Image]], np.ndarray]  # decoded RGB frames → (N, D) unit vectors
BigTier = Callable[[bytes], Decision]  # raises on no answer; the frame then stays closed
ImageNet = Callable[[list[Image.Image]], Optional[np.ndarray]]  # images → (N, 1000) ImageNet logits, or None
IMAGENET_ANIMALS = slice(0, 398)  # ILSVRC-2012 classes 0–397 are animals (tench … puffer)
BESIDE_MIN_SHARE = 0.3  # a strip narrower than this of the frame has no room for a second animal
BESIDE_MIN_SIDE = 32  # px


class TierError(RuntimeError):
    """The big tier gave no answer (unreachable, timed out, refused, or answered nonsense)."""


@dataclass
class FrameResult:
    """What the pipeline made of one frame. ``decision`` is None when the frame was not classified
    (a camera fault or a bad frame): then nothing is accepted."""

    frame_id: str
    decision: Optional[Decision] = None
    health: Health = field(default_factory=Health)
    error: Optional[str] = None  # "bad_frame", or None
    message: str = ""  # why the frame was refused (error or fault), in words
    reused_from: Optional[str] = None  # the anchor frame whose answer this unchanged scene reused
    unseen: bool = False  # reused without even decoding the frame (idle scene)
    tier: str = "local"  # "remote": the cascade's big tier answered; "unanswered": it was asked, in vain
    index_version: str = ""
    animals: list[dict] = field(default_factory=list)  # counted animals: box, label, species, score, accepted
    people: int = 0  # people in view: reported; they keep the door shut only where the kennel says so
    crowd: str = ""  # why the head count kept an accepted frame shut ("" = it did not)
    image: Optional[Image.Image] = field(default=None, repr=False)  # the decoded frame, when it was decoded

    @property
    def accepted(self) -> bool:
        return (self.decision is not None and self.decision.accepted and self.error is None and self.health.ok
                and not self.crowd)

    @property
    def species(self) -> str:
        return self.decision.species if self.accepted else OTHER

    @property
    def vote(self) -> Optional[str]:
        """This frame's vote in a door window: the accepted species, or None (stay shut)."""
        return self.decision.species if self.accepted else None

    @property
    def reason(self) -> str:
        if self.error is not None or not self.health.ok:
            return self.message
        if self.crowd:
            return self.crowd
        return self.decision.reason if self.decision is not None else ""


class Camera:
    """What the pipeline remembers of one camera between frames."""

    def __init__(self, motion: Optional[MotionGate] = None) -> None:
        self.motion = motion
        self.freeze = FreezeDetector()


@dataclass
class _Work:
    """A frame between the prepare and decide steps."""

    result: FrameResult
    data: Optional[bytes] = None
    thumb: Optional[np.ndarray] = None
    image: Optional[Image.Image] = None  # set when the frame needs the encoder


def boundary_margin(decision: Decision, thresholds: dict[str, float]) -> float:
    """The best non-`other` species' score minus its threshold (signed; -inf when there is none)."""
    species = next((n for n, _ in decision.top if n != OTHER), None)
    if species is None or species not in thresholds:
        return float("-inf")
    return next(s for n, s in decision.top if n == species) - thresholds[species]


def unsure(decision: Decision, thresholds: dict[str, float], margin: float) -> bool:
    """Whether an answer is within ``margin`` of its species' threshold (the cascade routes it)."""
    return abs(boundary_margin(decision, thresholds)) < margin


class FramePipeline:
    def __init__(
        self,
        decode: Callable[[ImageSource], Image.Image],
        embed: Embed,
        decider: Callable[[], Decider],
        detector: Callable[[], FaultDetector],
        limits: ImageLimits = ImageLimits(),
        big_tier: Optional[BigTier] = None,
        cascade_margin: float = 0.0,
        workers: int = 2,
        counter: Optional[Callable[[], Optional[Detector]]] = None,
        features: Callable[[Image.Image], FrameFeatures] = frame_features,
        imagenet: Optional[ImageNet] = None,
        beside_animal_p: float = 0.0,
    ) -> None:
        self.decode, self.embed, self.decider, self.detector = decode, embed, decider, detector
        self.features = features  # the health gate's frame statistics
        self.limits = limits
        self.big_tier, self.cascade_margin = big_tier, cascade_margin
        self.workers = workers
        self.counter = counter  # the animal detector, when one is installed (None: no head count)
        self.imagenet, self.beside_animal_p = imagenet, beside_animal_p  # the "animal beside" check (0: off)

    # --- the whole way ------------------------------------------------------------------
    def run(
        self,
        frames: Sequence[Frame],
        cameras: Optional[Sequence[Optional[Camera]]] = None,
        health: HealthThresholds = HealthThresholds(),
        overrides: Optional[dict[str, float]] = None,
        batch: int = 16,
        max_animals: int = 1,
        people_block: bool = False,
    ) -> list[FrameResult]:
        """One result per frame, in order. ``cameras[i]`` is frame i's camera (None: a lone photo).
        ``max_animals``: an accepted frame with more animals in view than this stays shut;
        ``people_block``: so does one with a person in view."""
        cameras = list(cameras) if cameras is not None else [None] * len(frames)
        decider = self.decider()  # one gallery version for the whole call
        detector = self.detector()
        if len(frames) == 1 or self.workers <= 1:
            work = [self._prepare(f, c, health, detector, decider) for f, c in zip(frames, cameras)]
        else:
            with ThreadPoolExecutor(self.workers) as pool:
                work = list(pool.map(lambda fc: self._prepare(fc[0], fc[1], health, detector, decider), zip(frames, cameras)))
        todo = [w for w in work if w.image is not None]
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            vectors = self.embed([w.image for w in part])
            for w, d in zip(part, decider.decide(vectors, overrides)):
                w.result.decision = self._cascade(d, w.data, w.result, decider, overrides)
        counter = self.counter() if self.counter is not None else None
        if counter is not None:
            for w in todo:
                if w.result.accepted:  # only an answer that could open a door pays for the count
                    self._count(w, counter, decider, overrides, max_animals, people_block)
        for w, camera in zip(work, cameras):
            if camera is not None and camera.motion is not None and w.thumb is not None:
                camera.motion.anchor(w.thumb, w.result.frame_id, _anchored(w.result))
        return [w.result for w in work]

    # --- steps --------------------------------------------------------------------------
    def _prepare(
        self, frame: Frame, camera: Optional[Camera], health: HealthThresholds, detector: FaultDetector, decider: Decider
    ) -> _Work:
        """Thumbnail, frozen feed, motion gate, decode, health gate: everything before the encoder."""
        w = _Work(FrameResult(uuid.uuid4().hex, index_version=decider.version))
        data = frame if isinstance(frame, (bytes, bytearray)) else None
        w.data = bytes(data) if data is not None else None
        motion = camera.motion if camera is not None else None
        try:
            if camera is not None and motion is not None and data is not None:
                idle = motion.unseen()
                if idle is not None and _same_version(idle, decider):
                    frozen = camera.freeze.update_unseen(w.data, health)
                    return self._fault(w, frozen) if not frozen.ok else _reuse(w, idle, unseen=True)
            image: Optional[Image.Image] = frame if isinstance(frame, Image.Image) else None
            if camera is not None:
                if data is not None:
                    w.thumb, image = thumbnail(w.data, self.limits)
                else:
                    image = image if image is not None else self.decode(frame)
                    w.thumb = grey_thumb(image)
                frozen = camera.freeze.update(w.thumb, health, w.data)
                if not frozen.ok:
                    w.thumb = None  # a frozen frame is no scene to compare later ones with
                    return self._fault(w, frozen)
                anchor = motion.unchanged(w.thumb) if motion is not None else None
                if anchor is not None and _same_version(anchor, decider):
                    return _reuse(w, anchor)
            if image is None:
                image = self.decode(w.data if w.data is not None else frame)
            w.result.image = image
            verdict = check(image, health, detector, self.features)
            if not verdict.ok:
                return self._fault(w, verdict)
            w.image = image
        except ImageError as exc:
            w.result.error, w.result.message = "bad_frame", f"bad frame: {exc}"
            if motion is not None:
                motion.reset()  # after a bad frame the next one gets the whole way
            w.thumb = None
        return w

    @staticmethod
    def _fault(w: _Work, verdict: Health) -> _Work:
        w.result.health = verdict
        w.result.message = f"camera fault ({verdict.detail}); not classified"
        return w

    def _count(
        self, w: _Work, counter: Detector, decider: Decider, overrides: Optional[dict], max_animals: int,
        people_block: bool = False,
    ) -> None:
        """Count the animals and people in an accepted frame and let the gallery name each animal
        (its crop). The frame stays shut with more than ``max_animals`` in view (a second animal
        slipping in behind), or when an animal's crop is accepted as another species than the
        whole frame (a blend of two animals, one of them missed by the detector); with several
        allowed, each must be accepted as that species. With one animal found (and one allowed),
        the strip of the frame beside it must not look like another animal (``_beside``). People
        are counted; with ``people_block`` (a kennel whose door must not open beside a person)
        one keeps it shut. No animal found: the whole-frame answer stands."""
        found = counter.detect(w.image)
        animals = [d for d in found if d.kind == "animal"]
        people = w.result.people = sum(d.kind == "person" for d in found)
        if people and people_block:
            w.result.crowd = (f"{people} {'person' if people == 1 else 'people'} in view: this kennel keeps its door "
                              "shut while people are in view")
        if not animals:
            return
        decisions = decider.decide(self.embed(crops(w.image, animals)), overrides)
        w.result.animals = [_animal(a, d) for a, d in zip(animals, decisions)]
        species = w.result.decision.species
        named = ", ".join(d.species if d.accepted else f"unknown ({a.label.lower()}?)" for a, d in zip(animals, decisions))
        if w.result.crowd:
            return
        if len(animals) > max_animals:
            w.result.crowd = f"{len(animals)} animals in view ({named}), at most {max_animals} may pass at once"
        elif any(d.accepted and d.species != species for d in decisions):
            w.result.crowd = f"the frame looks like {species} but an animal in it like another species: {named}"
        elif len(animals) > 1 and not all(d.accepted for d in decisions):
            w.result.crowd = f"animals in view that are not all {species}: {named}"
        elif len(animals) == 1 == max_animals:
            w.result.crowd = self._beside(w.image, animals[0], species)

    def _beside(self, image: Image.Image, animal: Detection, species: str) -> str:
        """Why the door stays shut if the part of the frame beside the one animal found looks like
        another animal ("" if not). The detector knows cats, dogs and cattle among animals, so a
        fox or a bird beside a dog is often not found; the encoder's ImageNet head, shown the
        strip beside the animal, names one of its 398 animal classes there with some confidence,
        and an empty floor, grass or a fence with almost none."""
        if self.imagenet is None or self.beside_animal_p <= 0:
            return ""
        share, strip = beside(image, animal)
        if share < BESIDE_MIN_SHARE or min(strip.size) < BESIDE_MIN_SIDE:
            return ""
        logits = self.imagenet([strip])
        if logits is None or logits.shape[-1] != 1000:
            return ""
        e = np.exp(logits[0] - logits[0].max())
        best = float(e[IMAGENET_ANIMALS].max() / e.sum())
        if best < self.beside_animal_p:
            return ""
        return (f"another animal may stand beside the {species}: the rest of the frame looks like an animal "
                f"({best:.2f} ≥ {self.beside_animal_p:.2f})")

    def _cascade(
        self, d: Decision, data: Optional[bytes], result: FrameResult, decider: Decider, overrides: Optional[dict]
    ) -> Decision:
        """The big tier's answer for a frame this model is unsure of; no answer keeps it closed."""
        if self.big_tier is None or data is None:
            return d
        if not unsure(d, {**decider.thresholds, **(overrides or {})}, self.cascade_margin):
            return d
        try:
            big = self.big_tier(data)
        except TierError as exc:
            result.tier = "unanswered"
            return Decision(OTHER, d.score, False, top=d.top, best=d.best,
                            reason=f"unsure ({d.reason}) and the big tier did not answer: {exc}")
        result.tier = "remote"
        return big


def _animal(found: Detection, decision: Decision) -> dict:
    """One counted animal as answers and logs show it: where, what the detector saw, what the gallery says."""
    return {"box": list(found.box), "label": found.label, "detector_score": found.score,
            "species": decision.species, "score": round(decision.score, 4), "accepted": decision.accepted}


def _same_version(anchor: Anchor, decider: Decider) -> bool:
    """An answer from another gallery version is never reused."""
    return anchor.outcome.index_version == decider.version


def _anchored(result: FrameResult) -> FrameResult:
    """What the motion gate keeps of a frame: its answer, not its pixels."""
    return dataclasses.replace(result, image=None)


def _reuse(w: _Work, anchor: Anchor, unseen: bool = False) -> _Work:
    a: FrameResult = anchor.outcome
    w.result = dataclasses.replace(
        a, frame_id=w.result.frame_id, reused_from=anchor.frame_id, unseen=unseen, image=None
    )
    w.thumb = None  # the anchor stays the frame that was classified
    return w
