"""Staff overrides of a kennel's door: open once, hold closed, lock for N minutes, release.

The database is the record (every override is audited and expires); this module keeps each
kennel's active override in memory so the frame path never reads the database for it.
A hold or a lock closes the door whatever the frames say. "Open once" opens it for the next
decided frame only and is then used up: claimed before the log write, written back after it,
and given back if the log could not take the frame (an unlogged frame never opens a door).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from sqlalchemy import select, update

from app import audit
from app.auth import Principal
from app.db.models import Override, as_utc
from app.db.session import Database

ACTIONS = ("open_once", "hold_closed", "lock", "release")
DEFAULT_MINUTES = {"open_once": 2.0, "hold_closed": 8 * 60.0, "lock": 15.0}  # every override expires
MAX_MINUTES = 24 * 60.0


class OverrideError(ValueError):
    """A request for an override that cannot be honoured (the message says why)."""


@dataclass(frozen=True)
class Active:
    id: int
    kennel_id: int
    action: str
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime

    @property
    def door(self) -> str:
        return "open" if self.action == "open_once" else "closed"

    def describe(self) -> str:
        what = {"open_once": "opened once", "hold_closed": "held closed", "lock": "locked"}[self.action]
        why = f": {self.reason}" if self.reason else ""
        return f"{what} by staff ({self.actor}, override {self.id}, until {self.expires_at:%H:%M:%S} UTC{why})"

    @classmethod
    def of(cls, row: Override) -> "Active":
        return cls(row.id, row.kennel_id, row.action, row.reason, row.actor, as_utc(row.created_at), as_utc(row.expires_at))


class Overrides:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._active: dict[int, Optional[Active]] = {}  # kennel → active override (None: known to have none)
        self._claimed: set[int] = set()  # open-once overrides a frame in flight is using
        self._lock = threading.Lock()

    # --- the frame path ------------------------------------------------------------------
    def active(self, kennel_id: int, now: Optional[datetime] = None) -> Optional[Active]:
        now = now or datetime.now(timezone.utc)
        with self._lock:
            known = kennel_id in self._active
            ov = self._active.get(kennel_id)
        if not known:
            ov = self._load(kennel_id, now)
        if ov is not None and ov.expires_at <= now:
            with self._lock:
                if self._active.get(kennel_id) == ov:
                    self._active[kennel_id] = None
            return None
        return ov

    def claim(self, kennel_id: int) -> Optional[Active]:
        """The override that decides this frame's door, or None. An open-once override is given
        to one frame only: a second frame in flight at the same time gets None."""
        ov = self.active(kennel_id)
        if ov is None or ov.action != "open_once":
            return ov
        with self._lock:
            if ov.id in self._claimed or self._active.get(kennel_id) != ov:
                return None
            self._claimed.add(ov.id)
        return ov

    def settle(self, ov: Active, frame_id: Optional[str]) -> None:
        """After the log write: ``frame_id`` used the open-once override up (None: the frame was
        not logged, and the override is given back for the next frame)."""
        if ov.action != "open_once":
            return
        if frame_id is None:
            with self._lock:
                self._claimed.discard(ov.id)
            return
        with self.db.session() as s:
            s.execute(update(Override).where(Override.id == ov.id, Override.ended_at.is_(None)).values(
                ended_at=datetime.now(timezone.utc), ended_by="used", used_by_frame=frame_id))
        with self._lock:
            self._claimed.discard(ov.id)
            if self._active.get(ov.kennel_id) == ov:
                self._active[ov.kennel_id] = None

    # --- staff ---------------------------------------------------------------------------
    def set(self, kennel_id: int, action: str, who: Principal, minutes: Optional[float] = None,
            reason: str = "") -> Optional[Active]:
        """Set (or, with ``release``, end) the kennel's override; audited in the same transaction.
        A new override replaces the active one. Returns the override now in force."""
        if action not in ACTIONS:
            raise OverrideError(f"unknown override {action!r}; one of {', '.join(ACTIONS)}")
        if action == "release":
            minutes = 0.0
        elif minutes is None:
            minutes = DEFAULT_MINUTES[action]
        if action != "release" and not (0 < minutes <= MAX_MINUTES):
            raise OverrideError(f"minutes must be above 0 and at most {MAX_MINUTES:g} (every override expires)")
        now = datetime.now(timezone.utc)
        with self.db.session() as s:
            ended = s.execute(update(Override).where(
                Override.kennel_id == kennel_id, Override.ended_at.is_(None), Override.expires_at > now,
            ).values(ended_at=now, ended_by=who.name).returning(Override.id)).scalars().all()
            row = Override(kennel_id=kennel_id, action=action, reason=reason[:500], actor=who.name, created_at=now,
                           expires_at=now + timedelta(minutes=minutes), ended_at=now if action == "release" else None,
                           ended_by=who.name if action == "release" else None)
            s.add(row)
            s.flush()
            audit.event(s, who, "override", f"kennel {kennel_id}",
                        {"action": action, "minutes": minutes, "reason": reason, "override": row.id, "ended": ended})
            new = None if action == "release" else Active.of(row)
        with self._lock:
            self._active[kennel_id] = new
        return new

    def history(self, kennel_id: int, limit: int = 50) -> list[Override]:
        with self.db.session() as s:
            rows = s.scalars(select(Override).where(Override.kennel_id == kennel_id)
                             .order_by(Override.id.desc()).limit(limit)).all()
            s.expunge_all()
            return list(rows)

    def forget(self, kennel_id: Optional[int] = None) -> None:
        with self._lock:
            if kennel_id is None:
                self._active.clear()
            else:
                self._active.pop(kennel_id, None)

    def _load(self, kennel_id: int, now: datetime) -> Optional[Active]:
        with self.db.session() as s:
            row = s.scalar(select(Override).where(
                Override.kennel_id == kennel_id, Override.ended_at.is_(None), Override.expires_at > now,
            ).order_by(Override.id.desc()).limit(1))
            ov = Active.of(row) if row is not None else None
        with self._lock:
            self._active.setdefault(kennel_id, ov)
            return self._active[kennel_id]
