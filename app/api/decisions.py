"""Admin: the decision log, filtered (monitoring, error analysis, retraining data)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import select

from app.api.edge import Offset, OptionalDbId
from app.api.deps import Admin, ServiceDep
from app.db.models import DecisionRecord
from app.schemas import DecisionOut

router = APIRouter(prefix="/v1/decisions", tags=["admin: decisions"], dependencies=[Admin])


@router.get("", response_model=list[DecisionOut], summary="Decisions, newest first, with filters")
def list_decisions(
    service: ServiceDep,
    kennel_id: OptionalDbId = None,
    species: Optional[str] = None,
    door: Optional[Literal["open", "closed"]] = None,
    error: Optional[bool] = None,
    health: Optional[str] = Query(None, description="'ok' or a camera fault name (dark, blur, frozen, …)"),
    index_version: Optional[str] = None,
    since: Optional[datetime] = Query(None, description="ISO time, inclusive"),
    until: Optional[datetime] = Query(None, description="ISO time, exclusive"),
    limit: int = Query(100, ge=1, le=10_000),
    offset: Offset = 0,
) -> list[DecisionOut]:
    q = select(DecisionRecord, DecisionRecord.thumbnail.is_not(None))
    for column, value in (
        (DecisionRecord.kennel_id, kennel_id), (DecisionRecord.species, species), (DecisionRecord.door, door),
        (DecisionRecord.error, error), (DecisionRecord.health, health), (DecisionRecord.index_version, index_version),
    ):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(DecisionRecord.created_at >= since)
    if until is not None:
        q = q.where(DecisionRecord.created_at < until)
    q = q.order_by(DecisionRecord.id.desc()).limit(limit).offset(offset)
    with service.db.session() as s:
        out = []
        for rec, has_thumb in s.execute(q):
            d = DecisionOut.model_validate(rec)
            d.has_thumbnail = bool(has_thumb)
            out.append(d)
        return out


@router.get("/{frame_id}/thumbnail", summary="The frame's stored thumbnail (JPEG)", response_class=Response)
def thumbnail(frame_id: str, service: ServiceDep) -> Response:
    with service.db.session() as s:
        data = s.scalar(select(DecisionRecord.thumbnail).where(DecisionRecord.frame_id == frame_id))
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no thumbnail for frame {frame_id}")
    return Response(data, media_type="image/jpeg")
