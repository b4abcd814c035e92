"""Kennel configurations as the frame path needs them, cached in memory (one DB read per change)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

from sqlalchemy import select

from app.db.models import Kennel, Species
from app.db.session import Database
from kennelgate.door import WindowPolicy
from kennelgate.health import HealthThresholds
from kennelgate.settings import Settings


@dataclass(frozen=True)
class KennelConfig:
    id: int
    name: str
    admits: frozenset[str]
    policy: WindowPolicy
    overrides: dict[str, float] = field(default_factory=dict)  # manual thresholds: species, then kennel
    health: HealthThresholds = field(default_factory=HealthThresholds)  # service defaults + kennel overrides
    max_animals: int = 1  # the head count: more animals in view keep the door shut
    people_block: bool = False  # the head count: a person in view keeps the door shut


def policy_of(kennel: Kennel, settings: Settings) -> WindowPolicy:
    return WindowPolicy(
        k=kennel.window_k or settings.window_k,
        n=kennel.window_n or settings.window_n,
        seconds=kennel.window_seconds or settings.window_seconds,
    )


def head_count_of(kennel: Kennel, settings: Settings) -> tuple[int, bool]:
    """The kennel's head-count policy, service defaults where it sets none: ``(max_animals, people_block)``."""
    people_block = settings.people_block if kennel.people_block is None else kennel.people_block
    return kennel.max_animals or settings.max_animals, people_block


class KennelCache:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._configs: dict[int, KennelConfig] = {}
        self._lock = threading.Lock()

    def get(self, kennel_id: int) -> Optional[KennelConfig]:
        with self._lock:
            hit = self._configs.get(kennel_id)
        if hit is not None:
            return hit
        with self.db.session() as s:
            kennel = s.get(Kennel, kennel_id)
            if kennel is None:
                return None
            species = {n: t for n, t in s.execute(select(Species.name, Species.threshold)) if t is not None}
            cfg = KennelConfig(
                kennel.id, kennel.name, frozenset(kennel.admits), policy_of(kennel, self.settings),
                {**species, **(kennel.thresholds or {})}, self.settings.health.merged(kennel.health),
                *head_count_of(kennel, self.settings),
            )
        with self._lock:
            self._configs[kennel_id] = cfg
        return cfg

    def invalidate(self, kennel_id: Optional[int] = None) -> None:
        with self._lock:
            if kennel_id is None:
                self._configs.clear()
            else:
                self._configs.pop(kennel_id, None)
