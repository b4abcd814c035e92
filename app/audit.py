"""The audit trail of manual thresholds: who changed what, when, from which value to which."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.auth import Principal
from app.db.models import ThresholdChange


def actor(who: Principal) -> str:
    return f"admin token {who.token_id}" if who.token_id is not None else "bootstrap admin token"


def record(s: Session, who: Principal, scope: str, target: str, field: str, old: Any, new: Any) -> None:
    """Add a change row to the caller's transaction (nothing is written if nothing changed)."""
    if old == new:
        return
    wrap = lambda v: v if isinstance(v, dict) or v is None else {"value": v}  # noqa: E731 - JSON column wants an object
    s.add(ThresholdChange(actor=actor(who), scope=scope, target=target, field=field, old=wrap(old), new=wrap(new)))
