"""The decision log's writer: group commit, so hundreds of frames a second cost a few commits.

Every frame still waits until its own row is committed (an unlogged decision must not open a
door), but rows that arrive while a commit is running go into the next transaction together.
A transaction per frame costs more CPU than the rest of an unchanged-scene frame.
"""

from __future__ import annotations

from typing import Optional

from app.batching import BatchingWorker
from app.db.models import DecisionRecord
from app.db.session import Database, describe_storage_error


class DecisionLog(BatchingWorker):
    def __init__(self, db: Database, max_batch: int = 256, timeout_s: float = 10.0) -> None:
        super().__init__("decision-log", max_batch, linger_s=0.0, timeout_s=timeout_s)
        self.db = db
        self._insert = DecisionRecord.__table__.insert()
        self._failing: Optional[str] = None

    def write(self, row: dict, deadline: Optional[float] = None) -> None:
        """Insert one decision; returns once it is committed, raises if it could not be.

        A row not yet being written by ``deadline`` is withdrawn (``TimeoutError``) and never
        written: the log can only ever hold what the device was told."""
        self.submit(row, deadline)

    @property
    def failing(self) -> Optional[str]:
        """Why the last write failed, while no write has succeeded since (readiness reads it)."""
        return self._failing

    def handle(self, rows: list[dict]) -> list:
        try:
            with self.db.engine.begin() as conn:
                conn.execute(self._insert, rows)
        except Exception as exc:
            self._failing = describe_storage_error(exc)
            raise
        self._failing = None
        return [None] * len(rows)

    def handle_failed(self, rows: list[dict], error: Exception) -> list:
        if len(rows) == 1:
            return [error]
        # One bad row must not fail its neighbours: retry them one by one.
        out: list = []
        for row in rows:
            try:
                out += self.handle([row])
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out
