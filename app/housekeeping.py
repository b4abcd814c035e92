"""Nightly housekeeping: the decision log keeps ``decision_retention_days`` of history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import delete

from app.db.models import DecisionRecord
from app.db.session import Database


def prune_decisions(db: Database, keep_days: int) -> int:
    if keep_days <= 0:
        return 0
    cutoff = datetime.now(timezone.utc) - timedelta(days=keep_days)
    with db.session() as s:
        return s.execute(delete(DecisionRecord).where(DecisionRecord.created_at < cutoff)).rowcount or 0
