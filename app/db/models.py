"""Database records. The schema is created and changed only by Alembic migrations (migrations/)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.sql.expression import false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations can refer to them on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(t: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC), PostgreSQL aware ones: make them alike."""
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Kennel(Base):
    __tablename__ = "kennels"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0003)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    admits: Mapped[list] = mapped_column(JSON, default=list)  # species names
    thresholds: Mapped[dict] = mapped_column(JSON, default=dict)  # species → manual threshold
    window_k: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # None = service default
    window_n: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    window_seconds: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    health: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)  # health-gate threshold overrides
    max_animals: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # None = service default
    people_block: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)  # None = service default
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Species(Base):
    __tablename__ = "species"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)  # manual override for all kennels
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    photos: Mapped[list["Photo"]] = relationship(back_populates="species", cascade="all, delete-orphan", passive_deletes=True)


class Photo(Base):
    """A stored gallery photo; its bytes live in the photo library under ``sha256``."""

    __tablename__ = "photos"
    __table_args__ = (UniqueConstraint("species_id", "sha256", name="uq_photos_species_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    species_id: Mapped[int] = mapped_column(ForeignKey("species.id", ondelete="CASCADE"), index=True)
    breed: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    suffix: Mapped[str] = mapped_column(String(10))
    original_name: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # "upload": staff uploaded it; "field": a kennel's own frame that staff labelled (the field loop)
    source: Mapped[str] = mapped_column(String(10), default="upload", server_default="upload")
    kennel_id: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # field photos: where and when
    taken_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    frame_id: Mapped[Optional[str]] = mapped_column(String(32), nullable=True, index=True)
    species: Mapped[Species] = relationship(back_populates="photos")

    @property
    def gallery_id(self) -> str:
        return f"photo:{self.id}"


class Token(Base):
    """A bearer token, stored only as its SHA-256. ``kennel_id`` is set for device tokens."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # "admin" | "staff" | "device"
    kennel_id: Mapped[Optional[int]] = mapped_column(ForeignKey("kennels.id", ondelete="CASCADE"), nullable=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)


class DecisionRecord(Base):
    """One frame's decision: the monitoring record and the data for later retraining.

    ``kennel_id`` is deliberately not a foreign key: deleting a kennel keeps its history.
    """

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_kennel_time", "kennel_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    frame_id: Mapped[str] = mapped_column(String(32), unique=True)
    kennel_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    species: Mapped[str] = mapped_column(String(100))  # accepted species or "other"
    best: Mapped[str] = mapped_column(String(100), default="")  # closest species even when rejected
    score: Mapped[float] = mapped_column(Float, default=0.0)
    breed: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    door: Mapped[str] = mapped_column(String(10))  # "open" | "closed"
    reason: Mapped[str] = mapped_column(String(500))
    error: Mapped[bool] = mapped_column(Boolean, default=False)  # the frame itself failed (bad image, internal)
    health: Mapped[str] = mapped_column(String(20), default="ok", server_default="ok")  # "ok" or the camera fault
    reused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # motion gate: answer reused
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    model: Mapped[str] = mapped_column(String(100), default="")  # encoder fingerprint
    index_version: Mapped[str] = mapped_column(String(20), default="")
    thumbnail: Mapped[Optional[bytes]] = mapped_column(LargeBinary, nullable=True)
    animals: Mapped[Optional[list]] = mapped_column(JSON, nullable=True)  # the head count's animals, when it ran
    people: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # people in view, when the head count ran
    label: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)  # what staff say really stood there
    labelled_by: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    labelled_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    override: Mapped[Optional[str]] = mapped_column(String(20), nullable=True)  # a staff override set the door
    kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # the whole frame was kept


class Override(Base):
    """A staff override of one kennel's door: open once, hold closed, lock for N minutes.

    Every override expires; ``ended_at`` is set when it is released, replaced or used up
    (open once). ``kennel_id`` is not a foreign key, like the decisions it explains.
    """

    __tablename__ = "overrides"
    __table_args__ = (Index("ix_overrides_kennel_time", "kennel_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kennel_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))  # "open_once" | "hold_closed" | "lock" | "release"
    reason: Mapped[str] = mapped_column(String(500), default="")
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_by: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    used_by_frame: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)


class AuditEvent(Base):
    """Who did what, when: overrides, relabels, uploads, photo deletions, rebuilds, tokens.
    (Manual thresholds keep their own table, ``threshold_changes``, with old and new values.)"""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(30))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)


class ThresholdChange(Base):
    """Who changed which manual threshold, when, from what to what (the audit trail)."""

    __tablename__ = "threshold_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(10))  # "kennel" | "species"
    target: Mapped[str] = mapped_column(String(200))  # kennel id or species name
    field: Mapped[str] = mapped_column(String(50))  # "thresholds" | "threshold" | "health"
    old: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    new: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)


class Alert(Base):
    """A camera fault or drift alert raised or cleared for a kennel (also sent by MQTT/webhook)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_kennel_time", "kennel_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kennel_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # "camera_fault" | "drift"
    state: Mapped[str] = mapped_column(String(10))  # "raised" | "cleared"
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
