"""Staff labels: what really stood at the door, recorded on the decision (the field loop's data).

A label names a species of the gallery or ``other`` (a hard negative). Relabelling is audited,
counted in Prometheus (did the door's answer agree?) and sent as a ``label`` event.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import select

from app import audit
from app.auth import Principal
from app.db.models import DecisionRecord, Species
from app.db.session import Database
from app.library import LibraryError, species_name
from index.folders import OTHER


class LabelError(ValueError):
    """A label that cannot be recorded; ``missing`` is True when the frame is not in the log."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def label(db: Database, frame_ids: Sequence[str], species: str, who: Principal) -> list[DecisionRecord]:
    """Label every frame in ``frame_ids`` as ``species``, in one transaction (all or nothing)."""
    try:
        name = species_name(species)
    except LibraryError as exc:
        raise LabelError(str(exc)) from None
    with db.session() as s:
        if name != OTHER and s.scalar(select(Species.id).where(Species.name == name)) is None:
            names = sorted(s.scalars(select(Species.name)).all())
            raise LabelError(f"no species {name!r}; one of: {', '.join(names + [OTHER])}")
        rows = s.scalars(select(DecisionRecord).where(DecisionRecord.frame_id.in_(list(frame_ids)))).all()
        found = {r.frame_id for r in rows}
        missing = [f for f in frame_ids if f not in found]
        if missing:
            raise LabelError(f"no decision for frame {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""),
                             missing=True)
        now = datetime.now(timezone.utc)
        for r in rows:
            was = r.label
            r.label, r.labelled_by, r.labelled_at = name, who.name, now
            audit.event(s, who, "label", f"frame {r.frame_id}",
                        {"kennel": r.kennel_id, "label": name, "was": was, "answered": r.species, "door": r.door})
        s.flush()
        s.expunge_all()
        return list(rows)


def agreed(r: DecisionRecord) -> bool:
    """The door's answer matched the label: the right species accepted, or ``other`` kept out."""
    return r.species == r.label if r.label != OTHER else not r.accepted
