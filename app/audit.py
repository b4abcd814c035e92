"""The audit trail: who changed what, when.

Manual thresholds are recorded with their old and new values (``threshold_changes``); every other
staff action — overrides, relabels, uploads, photo deletions, rebuilds, tokens — is an
``audit_events`` row. ``trail`` reads both as one list, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import Principal
from app.db.models import AuditEvent, ThresholdChange, as_utc


def actor(who: Principal) -> str:
    return who.name


def record(s: Session, who: Principal, scope: str, target: str, field: str, old: Any, new: Any) -> None:
    """Add a threshold change to the caller's transaction (nothing is written if nothing changed)."""
    if old == new:
        return
    wrap = lambda v: v if isinstance(v, dict) or v is None else {"value": v}  # noqa: E731 - JSON column wants an object
    s.add(ThresholdChange(actor=actor(who), scope=scope, target=target, field=field, old=wrap(old), new=wrap(new)))


def event(s: Session, who: Principal | str, action: str, target: str, detail: Optional[dict] = None) -> None:
    """Add a staff action to the caller's transaction: it is audited exactly when it happens."""
    name = who if isinstance(who, str) else actor(who)
    s.add(AuditEvent(actor=name, action=action, target=target[:200], detail=detail))


@dataclass(frozen=True)
class Entry:
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict


def trail(s: Session, limit: int = 200, action: Optional[str] = None) -> list[Entry]:
    """Threshold changes and other events together, newest first."""
    out: list[Entry] = []
    if action in (None, "threshold"):
        for c in s.scalars(select(ThresholdChange).order_by(ThresholdChange.id.desc()).limit(limit)):
            out.append(Entry(c.created_at, c.actor, "threshold", f"{c.scope} {c.target}",
                             {"field": c.field, "old": c.old, "new": c.new}))
    if action != "threshold":
        q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if action is not None:
            q = q.where(AuditEvent.action == action)
        out += [Entry(e.created_at, e.actor, e.action, e.target, e.detail or {}) for e in s.scalars(q)]
    out.sort(key=lambda e: as_utc(e.at), reverse=True)
    return out[:limit]

