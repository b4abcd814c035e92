"""Bearer tokens: admin tokens, staff tokens (review, relabel, override; no token or kennel
management), and device tokens bound to one kennel.

Only a token's SHA-256 is stored. The bootstrap admin token comes from ``KENNELGATE_ADMIN_TOKEN``
(compared in constant time); others are issued by the API or ``kennelgate token admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import select

from app.db.models import Token
from app.db.session import Database

ADMIN_PREFIX = "kga_"
STAFF_PREFIX = "kgs_"
DEVICE_PREFIX = "kgd_"
PREFIXES = {"admin": ADMIN_PREFIX, "staff": STAFF_PREFIX, "device": DEVICE_PREFIX}
_CACHE_SECONDS = 10.0  # device tokens are checked on every frame; revocation clears the cache at once
_CACHE_MAX = 10_000  # entries (valid and invalid tokens); the oldest go first: guessing cannot grow it
FAILURES_PER_MINUTE = 30  # failed token checks one client may make before it is refused for a while
_CLIENTS_MAX = 10_000


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" | "staff" | "device"
    kennel_id: Optional[int] = None
    token_id: Optional[int] = None

    @property
    def is_staff(self) -> bool:
        """May review, relabel and override (admins may too)."""
        return self.kind in ("admin", "staff")

    @property
    def name(self) -> str:
        """How the audit trail names this principal."""
        if self.token_id is None:
            return "bootstrap admin token"
        return f"{self.kind} token {self.token_id}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(kind: str) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def issue(db: Database, kind: str, kennel_id: Optional[int] = None, label: str = "") -> tuple[int, str]:
    token = new_token(kind)
    with db.session() as s:
        row = Token(kind=kind, kennel_id=kennel_id, token_hash=hash_token(token), label=label)
        s.add(row)
        s.flush()
        return row.id, token


class Authenticator:
    def __init__(self, db: Database, bootstrap_admin: str = "") -> None:
        self.db = db
        self.bootstrap = bootstrap_admin
        self._cache: OrderedDict[str, tuple[float, Optional[Principal]]] = OrderedDict()
        self._failures: OrderedDict[str, list[float]] = OrderedDict()  # client → times of failed checks
        self._lock = threading.Lock()

    MISS = object()

    def cached(self, token: str):
        """The answer without touching the database, or ``Authenticator._MISS``."""
        if not token:
            return None
        if self.bootstrap and hmac.compare_digest(token.encode(), self.bootstrap.encode()):
            return Principal("admin")
        with self._lock:
            hit = self._cache.get(hash_token(token))
        return hit[1] if hit and hit[0] > time.monotonic() else self.MISS

    def identify(self, token: str) -> Optional[Principal]:
        who = self.cached(token)
        if who is not self.MISS:
            return who
        digest = hash_token(token)
        now = time.monotonic()
        with self.db.session() as s:
            row = s.scalar(select(Token).where(Token.token_hash == digest, Token.revoked_at.is_(None)))
            who = Principal(row.kind, row.kennel_id, row.id) if row else None
        with self._lock:
            self._cache[digest] = (now + _CACHE_SECONDS, who)
            self._cache.move_to_end(digest)
            while len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)
        return who

    # --- failed attempts ---------------------------------------------------------------------
    def refused_for(self, client: str) -> Optional[int]:
        """Seconds ``client`` must wait before its next token check, or None: more than
        ``FAILURES_PER_MINUTE`` failures in the last minute and it is refused without a check."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._failures.get(client, []) if now - t < 60.0]
            if len(times) < FAILURES_PER_MINUTE:
                return None
            return max(1, int(60.0 - (now - times[0])) + 1)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._failures.pop(client, []) if now - t < 60.0] + [now]
            self._failures[client] = times[-FAILURES_PER_MINUTE:]
            while len(self._failures) > _CLIENTS_MAX:
                self._failures.popitem(last=False)

    def revoke(self, token_id: int) -> bool:
        with self.db.session() as s:
            row = s.get(Token, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = datetime.now(timezone.utc)
        self.forget_cache()
        return True

    def forget_cache(self) -> None:
        with self._lock:
            self._cache.clear()
