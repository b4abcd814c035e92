"""A readiness card per species: is it ready for a door to depend on it, and if not, what to do.

Everything on the card comes from the gallery and its calibration (held out by twin group, so
the predicted rate is what new photos of new scenes get, not what the gallery's own near-twins
get): how many distinct scenes the photos really are, the share of new photos predicted to be
accepted, the species it is mistaken for, and photos filed elsewhere that look like it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import BaseModel

from index.calibration import Calibration, held_out_matrix
from index.folders import OTHER
from index.gallery import Gallery
from index.scoring import Method

READY_ACCEPT = 0.9  # the client's floor: at least 9 in 10 right animals admitted per frame
MIN_SCENES = 50  # below this the predicted rate itself is too uncertain to lean on
MAX_CONFLICTS = 10


class Conflict(BaseModel):
    photo: str  # the photo's id in the gallery
    filed_under: str
    score: float  # its score for this species (at or above this species' threshold)


NO_OTHER_TIP = (
    "no photos are filed under 'other': file photos of animals that come to the door but must not get in "
    "(wildlife, neighbours' pets, look-alikes) under 'other'; the score then keeps their look-alikes out "
    "(measured: raccoons filed from half their photos let the other half in on 0% of frames, docs/admit.md)"
)


class ReadinessCard(BaseModel):
    species: str
    ready: bool
    photos: int
    scenes: Optional[int] = None  # twin groups: bursts and near-duplicates count once
    near_duplicates: Optional[int] = None  # photos with a near-twin among the others
    predicted_accept: float  # share of new photos of this species predicted to be accepted
    threshold: float
    confused_with: Optional[str] = None
    confused_rate: Optional[float] = None
    conflicts: list[Conflict] = []
    conflicts_total: int = 0
    advice: list[str] = []


def readiness(gallery: Gallery, calibration: Calibration, name: str, method: Method = "contrast") -> ReadinessCard:
    if name not in gallery.species or name == OTHER:
        raise KeyError(f"no species {name!r} in the gallery (have: {', '.join(gallery.names(include_other=False)) or 'none'})")
    c = calibration.methods[method][name]
    conflicts = _conflicts(gallery, calibration, name, method)
    card = ReadinessCard(
        species=name, ready=False, photos=c.photos, scenes=c.groups, near_duplicates=c.twin_photos,
        predicted_accept=c.loo_accept_rate, threshold=c.threshold, confused_with=c.confused_with,
        confused_rate=c.confused_rate, conflicts=conflicts[:MAX_CONFLICTS], conflicts_total=len(conflicts),
    )
    card.advice = _advice(card, has_other=OTHER in gallery.species)
    # Conflicts and confusions are advice; a door can depend on a species that new photos pass.
    card.ready = card.predicted_accept >= READY_ACCEPT and (card.scenes or card.photos) >= MIN_SCENES
    return card


def _conflicts(gallery: Gallery, calibration: Calibration, name: str, method: Method) -> list[Conflict]:
    """Photos filed under another species (or `other`) whose best match is ``name``, above its threshold."""
    threshold = calibration.methods[method][name].threshold
    out: list[Conflict] = []
    for other in gallery.names():
        if other == name:
            continue
        photos = gallery.species[other]
        # Against its own species a photo would match itself (and its twins): that column is held out.
        names, scores, _ = held_out_matrix(
            gallery, other, method, calibration.k, calibration.twin_cosine, calibration.other_weight
        )
        j = names.index(name)
        hits = np.flatnonzero((scores.argmax(1) == j) & (scores[:, j] >= threshold))
        out += [Conflict(photo=photos.ids[i], filed_under=other, score=round(float(scores[i, j]), 4)) for i in hits]
    return sorted(out, key=lambda c: -c.score)


def _advice(card: ReadinessCard, has_other: bool) -> list[str]:
    tips: list[str] = []
    scenes = card.scenes if card.scenes is not None else card.photos
    if card.predicted_accept < READY_ACCEPT:
        turned = round(10 * (1 - card.predicted_accept))
        tips.append(
            f"about {max(turned, 1)} in 10 new photos of {card.species} would be turned away "
            f"({100 * card.predicted_accept:.0f}% predicted accepted): add ~100 more varied photos "
            "(different days, angles, lighting, animals)"
        )
    if scenes < MIN_SCENES:
        tips.append(
            f"only {scenes} distinct scenes: the prediction is rough below {MIN_SCENES}; add photos of other "
            "animals of this species and other sessions"
        )
    if card.near_duplicates and card.near_duplicates > card.photos / 2:
        tips.append(
            f"{card.near_duplicates} of {card.photos} photos are near-duplicates (bursts, one photo session): "
            f"they count as {scenes} scenes; single photos from different sessions help more"
        )
    if card.confused_with and (card.confused_rate or 0) > 0.05:
        tips.append(
            f"{100 * card.confused_rate:.0f}% of its photos look more like {card.confused_with}: add photos that "
            f"show what sets {card.species} apart, and check that none is filed under the wrong species"
        )
    if card.conflicts_total:
        where = sorted({c.filed_under for c in card.conflicts})
        tips.append(
            f"{card.conflicts_total} photo(s) filed under {', '.join(where)} look like {card.species} "
            "(conflicts below): check whether they are filed right"
        )
    if not has_other:
        tips.append(NO_OTHER_TIP)
    return tips or [f"{100 * card.predicted_accept:.0f}% of new photos predicted to be accepted: nothing to do"]
