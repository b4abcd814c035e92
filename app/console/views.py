"""What the console's pages show, read from the service (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional

from sqlalchemy import select

from app.db.models import Alert, DecisionRecord, Kennel, Photo, Token, as_utc
from app.kennels import head_count_of
from app.overrides import Active
from app.service import Service
from index.folders import OTHER

# Newest first by time, as the (kennel_id, created_at) and created_at indexes are ordered: ordering
# by id alone made the database sort every row of a kennel to find its last few.
NEWEST = (DecisionRecord.created_at.desc(), DecisionRecord.id.desc())
OUTCOMES = {
    "rejected": "kept out (answer other, no fault)",
    "opened": "door opened",
    "faults": "camera faults",
    "errors": "errors (bad frame, internal, late)",
    "teaching": "frames kept whole: a label teaches the gallery",
    "overridden": "a staff override decided",
    "labelled": "labelled by staff",
    "unlabelled": "not labelled yet",
    "all": "everything",
}


@dataclass
class KennelView:
    id: int
    name: str
    admits: list[str]
    thresholds: dict
    door: str = "closed"
    last_at: Optional[datetime] = None
    override: Optional[Active] = None
    camera: str = "ok"
    drift: str = "ok"
    recent: list[DecisionRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    max_animals: int = 1  # the head count's door policy
    people_block: bool = False


def kennels(service: Service, frames: int = 6, kennel_id: Optional[int] = None) -> list[KennelView]:
    """Every kennel (or one) with its door, active override, camera and drift state, last frames."""
    q = select(Kennel).order_by(Kennel.id)
    if kennel_id is not None:
        q = q.where(Kennel.id == kennel_id)
    out = []
    with service.db.session() as s:
        for k in s.scalars(q).all():
            max_animals, people_block = head_count_of(k, service.settings)
            v = KennelView(k.id, k.name, list(k.admits), dict(k.thresholds or {}),
                           max_animals=max_animals, people_block=people_block)
            v.recent = s.scalars(select(DecisionRecord).where(DecisionRecord.kennel_id == k.id)
                                 .order_by(*NEWEST).limit(frames)).all()
            if v.recent:
                v.door, v.last_at = v.recent[0].door, v.recent[0].created_at
            v.alerts = s.scalars(select(Alert).where(Alert.kennel_id == k.id)
                                 .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(3)).all()
            out.append(v)
        s.expunge_all()
    for v in out:
        v.override = service.overrides.active(v.id)
        state = service.monitoring.health(v.id)
        v.camera, v.drift = state["camera"]["state"], state["drift"]["state"]
    return out


@dataclass(frozen=True)
class KeptFrames:
    """What the field loop keeps on disk, for the staff to see against its budget."""

    mode: str
    frames: int
    used_mb: float
    budget_mb: float
    days: int
    per_minute: int


def kept_frames(service: Service) -> KeptFrames:
    k, s = service.keeper, service.settings
    return KeptFrames(s.keep_frames, k.count, k.used_bytes / 1e6, s.keep_frames_mb, s.keep_frames_days,
                      s.keep_frames_per_minute)


def kennel_names(service: Service) -> list[tuple[int, str]]:
    with service.db.session() as s:
        return [tuple(r) for r in s.execute(select(Kennel.id, Kennel.name).order_by(Kennel.id))]


def kennel(service: Service, kennel_id: int) -> Optional[KennelView]:
    found = kennels(service, frames=12, kennel_id=kennel_id)
    return found[0] if found else None


@dataclass(frozen=True)
class DoorEvent:
    at: datetime
    what: str
    who: str


def door_history(service: Service, kennel_id: int, limit: int = 40) -> list[DoorEvent]:
    """Overrides and the door's own openings and closings (state changes), newest first."""
    events = []
    for o in service.overrides.history(kennel_id, limit):
        end = f"; ended {o.ended_at:%H:%M:%S} ({o.ended_by})" if o.ended_at and o.action != "release" else ""
        why = f" — {o.reason}" if o.reason else ""
        events.append(DoorEvent(as_utc(o.created_at), f"override {o.action.replace('_', ' ')}{why}{end}", o.actor))
    with service.db.session() as s:
        rows = s.execute(select(DecisionRecord.created_at, DecisionRecord.door, DecisionRecord.species,
                                DecisionRecord.override)
                         .where(DecisionRecord.kennel_id == kennel_id)
                         .order_by(*NEWEST).limit(500)).all()
    rows = rows[::-1]
    for prev, cur in zip(rows, rows[1:]):
        if cur.door != prev.door:
            by = f"staff override ({cur.override})" if cur.override else f"frames ({cur.species})"
            events.append(DoorEvent(as_utc(cur.created_at), f"door {cur.door}", by))
    events.sort(key=lambda e: e.at, reverse=True)
    return events[:limit]


def decisions(service: Service, kennel_id: Optional[int], outcome: str, hours: Optional[float],
              limit: int = 100, offset: int = 0) -> list[DecisionRecord]:
    q = select(DecisionRecord)
    if kennel_id is not None:
        q = q.where(DecisionRecord.kennel_id == kennel_id)
    if hours:
        q = q.where(DecisionRecord.created_at >= datetime.now(timezone.utc) - timedelta(hours=hours))
    D = DecisionRecord
    q = {
        "rejected": q.where(D.accepted.is_(False), D.error.is_(False), D.health == "ok"),
        "opened": q.where(D.door == "open"),
        "faults": q.where(D.health != "ok"),
        "errors": q.where(D.error.is_(True)),
        "teaching": q.where(D.kept.is_(True), D.label.is_(None)),
        "overridden": q.where(D.override.is_not(None)),
        "labelled": q.where(D.label.is_not(None)),
        "unlabelled": q.where(D.label.is_(None), D.error.is_(False)),
    }.get(outcome, q)
    with service.db.session() as s:
        rows = s.scalars(q.order_by(*NEWEST).limit(limit).offset(offset)).all()
        s.expunge_all()
        return list(rows)


def label_choices(service: Service) -> list[str]:
    """What staff may say stood at the door: every species, then ``other``."""
    return sorted(set(service.library.counts()) - {OTHER}) + [OTHER]


def photos(service: Service, name: str, limit: int = 600) -> Optional[list]:
    """(id, original name) of a species' newest photos; None when there is no such species."""
    with service.db.session() as s:
        sp = service.library.get_species(s, name)
        if sp is None:
            return None
        return s.execute(select(Photo.id, Photo.original_name).where(Photo.species_id == sp.id)
                         .order_by(Photo.id.desc()).limit(limit)).all()


def tokens(service: Service) -> list[Token]:
    with service.db.session() as s:
        rows = s.scalars(select(Token).order_by(Token.id.desc()).limit(500)).all()
        s.expunge_all()
        return list(rows)


