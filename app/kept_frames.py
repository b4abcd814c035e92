"""Whole frames kept for learning: the frames of decisions that can teach (the door kept the
animal out, the answer had a close runner-up, or staff overrode the door), so that a staff label
can turn them into field photos of the kennel's own camera.

Files live under ``<home>/frames/``, one per frame id, written atomically before the frame's log
row says ``kept``. A disk budget (the oldest frames go first) and a retention period bound them,
and a per-kennel rate: a raccoon that lingers at one door for an hour must not push every other
kennel's frames out of the budget (frames a staff override decided are always kept).
Keeping a frame never costs the frame its answer: a full disk only means the frame is not kept.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


class FrameKeeper:
    def __init__(self, root: Path, mode: str = "teachable", budget_mb: float = 2000.0, days: int = 90,
                 margin: float = 0.05, per_minute: int = 12) -> None:
        self.root = Path(root)
        self.mode = mode
        self.per_minute = per_minute  # kept frames per kennel per minute (0: no limit)
        self._recent: dict[int, deque] = {}  # kennel → times of its last kept frames
        self.budget = int(budget_mb * 1e6)
        self.days = days
        self.margin = margin
        self._sizes: "OrderedDict[str, int]" = OrderedDict()  # frame id → bytes, oldest first
        self._used = 0
        self._lock = threading.Lock()
        if mode != "none":
            self.root.mkdir(parents=True, exist_ok=True)
            self._scan()

    def _scan(self) -> None:
        files = sorted(self.root.glob("*/*.frame"), key=lambda p: p.stat().st_mtime)
        for p in files:
            size = p.stat().st_size
            self._sizes[p.stem] = size
            self._used += size
        for p in self.root.glob("*/.keep-*"):  # a crash mid-write
            p.unlink(missing_ok=True)

    def path(self, frame_id: str) -> Path:
        return self.root / frame_id[:2] / f"{frame_id}.frame"

    def teachable(self, accepted: bool, error: bool, fault: bool, override: Optional[str],
                  top: Optional[list] = None) -> bool:
        """Whether this decision's frame is worth keeping under the configured mode."""
        if self.mode == "none" or error:
            return False
        if self.mode == "all" or override:
            return True
        if fault:
            return False  # a camera fault teaches the gate, not the gallery
        if not accepted:
            return True
        return bool(top and len(top) > 1 and top[0][1] - top[1][1] < self.margin)

    def keep(self, frame_id: str, data: bytes, kennel_id: Optional[int] = None, always: bool = False,
             now: Optional[float] = None) -> bool:
        """Write the frame (atomically); False when it could not be kept (full disk, budget, or
        ``kennel_id`` already kept ``per_minute`` frames in the last minute and not ``always``)."""
        if self.mode == "none" or len(data) > self.budget:
            return False
        if kennel_id is not None and self.per_minute > 0 and not always and not self._admit(kennel_id, now):
            return False
        path = self.path(frame_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".keep-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("frame %s not kept: %s", frame_id, exc)
            return False
        with self._lock:
            self._sizes[frame_id] = len(data)
            self._used += len(data)
            over = []
            while self._used > self.budget and len(self._sizes) > 1:
                old, size = self._sizes.popitem(last=False)
                self._used -= size
                over.append(old)
        for old in over:
            self.path(old).unlink(missing_ok=True)
        return True

    def _admit(self, kennel_id: int, now: Optional[float]) -> bool:
        t = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent.setdefault(kennel_id, deque())
            while recent and t - recent[0] >= 60.0:
                recent.popleft()
            if len(recent) >= self.per_minute:
                return False
            recent.append(t)
            return True

    def read(self, frame_id: str) -> Optional[bytes]:
        try:
            return self.path(frame_id).read_bytes()
        except OSError:
            return None

    def forget(self, frame_id: str) -> None:
        """The frame's decision was not logged: its file must not outlive it."""
        with self._lock:
            size = self._sizes.pop(frame_id, None)
            if size is not None:
                self._used -= size
        self.path(frame_id).unlink(missing_ok=True)

    def prune(self, now: Optional[float] = None) -> int:
        """Delete frames older than the retention period; returns how many."""
        if self.mode == "none" or self.days <= 0:
            return 0
        cutoff = (now or time.time()) - self.days * 86400
        gone = 0
        for p in list(self.root.glob("*/*.frame")):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    gone += 1
                    with self._lock:
                        size = self._sizes.pop(p.stem, None)
                        if size is not None:
                            self._used -= size
            except OSError:
                pass
        return gone

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def count(self) -> int:
        return len(self._sizes)
