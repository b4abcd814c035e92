"""Per-kennel door policy: open only when K of the last N frames agree on an admitted species.

One frame is never enough: a single wrong accept must not open a door. Any frame in the window
that is ``other``, a bad frame, or a species the kennel does not admit keeps the door shut.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class WindowPolicy:
    k: int = 3
    n: int = 5
    seconds: float = 2.0

    def __post_init__(self) -> None:
        if not (1 <= self.k <= self.n):
            raise ValueError(f"need 1 <= K <= N, got K={self.k}, N={self.n}")
        if self.seconds <= 0:
            raise ValueError("the window must last more than 0 seconds")


@dataclass(frozen=True)
class Vote:
    t: float
    species: Optional[str]  # accepted species, or None (other, bad frame, error)


class DoorWindow:
    """The recent frames of one kennel; thread-safe."""

    def __init__(self, policy: WindowPolicy, admits: frozenset[str]) -> None:
        self.policy = policy
        self.admits = admits
        self._votes: deque[Vote] = deque(maxlen=policy.n)
        self._lock = threading.Lock()

    def add(self, t: float, species: Optional[str]) -> tuple[bool, str]:
        """Record this frame's vote and say whether the door opens now, with the reason."""
        return self._judge(t, species, record=True)

    def would_open(self, t: float, species: Optional[str]) -> tuple[bool, str]:
        """What ``add`` would answer, without recording the vote (it is recorded once the frame
        is safely in the decision log: an unlogged frame votes to stay shut instead)."""
        return self._judge(t, species, record=False)

    def _judge(self, t: float, species: Optional[str], record: bool) -> tuple[bool, str]:
        p = self.policy
        with self._lock:
            votes = list(self._votes)[1 - p.n:] if p.n > 1 else []
            votes.append(Vote(t, species))
            if record:
                self._votes.append(votes[-1])
            recent = [v for v in votes if t - v.t <= p.seconds]
        if species is None:
            return False, "this frame was not accepted"
        if species not in self.admits:
            return False, f"{species} is not admitted here (admits: {', '.join(sorted(self.admits)) or 'nothing'})"
        blockers = [v.species or "other" for v in recent if v.species not in self.admits]
        if blockers:
            return False, f"window: {len(blockers)} of the last {len(recent)} frames saw {', '.join(sorted(set(blockers)))}"
        agree = sum(v.species == species for v in recent)
        if agree >= p.k:
            return True, f"{agree} of the last {len(recent)} frames agree on {species}"
        return False, f"waiting: {agree} of {p.k} frames agree on {species} (window {p.n} frames / {p.seconds:g}s)"


class Windows:
    """DoorWindow per kennel, rebuilt when the kennel's policy or admitted species change."""

    def __init__(self) -> None:
        self._by_kennel: dict[int, DoorWindow] = {}
        self._lock = threading.Lock()

    def get(self, kennel_id: int, policy: WindowPolicy, admits: frozenset[str]) -> DoorWindow:
        with self._lock:
            w = self._by_kennel.get(kennel_id)
            if w is None or w.policy != policy or w.admits != admits:
                w = self._by_kennel[kennel_id] = DoorWindow(policy, admits)
            return w

    def forget(self, kennel_id: int) -> None:
        with self._lock:
            self._by_kennel.pop(kennel_id, None)
