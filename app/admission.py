"""Deadlines, not queues: how many frames may be in flight, and how old a frame may be when decided.

An overloaded server that queues every frame answers each one later than the last: a door that
opens half a minute after the animal was seen is a wrong open waiting to happen. So frames beyond
the in-flight bounds (per kennel and in total) are refused at once with 429/503 and Retry-After,
and a frame not decided within the deadline of its arrival is answered 503 and never decided late.
Health and admin endpoints do not pass through here and keep answering.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Optional


class FrameLate(TimeoutError):
    """The frame's deadline passed before it could be decided: it must not be answered as decided."""


@dataclass(frozen=True)
class Refusal:
    status: int  # 429: this kennel sends faster than it is answered; 503: the server is full
    reason: str
    retry_after_s: int = 1


class Admission:
    def __init__(self, total: int, per_kennel: int) -> None:
        self.total, self.per_kennel = max(1, total), max(1, per_kennel)
        self._lock = threading.Lock()
        self._by_kennel: Counter[int] = Counter()
        self._in_flight = 0

    def enter(self, kennel_id: int) -> Optional[Refusal]:
        """None when the frame may go on (then ``leave`` once answered), else why not."""
        with self._lock:
            if self._by_kennel[kennel_id] >= self.per_kennel:
                return Refusal(429, f"kennel {kennel_id} already has {self.per_kennel} frames in flight; "
                                    "send fewer frames per second")
            if self._in_flight >= self.total:
                return Refusal(503, f"server busy ({self.total} frames in flight); door kept shut, retry")
            self._by_kennel[kennel_id] += 1
            self._in_flight += 1
            return None

    def leave(self, kennel_id: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._by_kennel[kennel_id] -= 1
            if self._by_kennel[kennel_id] <= 0:
                del self._by_kennel[kennel_id]

    @property
    def in_flight(self) -> int:
        return self._in_flight


def deadline_after(ms: float, arrived: Optional[float] = None) -> float:
    """The monotonic time by which a frame that arrived at ``arrived`` (now) must be decided."""
    return (time.monotonic() if arrived is None else arrived) + ms / 1000.0
