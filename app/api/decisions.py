"""Staff: the decision log, filtered (monitoring, error analysis, retraining data), and labels:
what really stood at the door."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlalchemy import select

from app.api.edge import Offset, OptionalDbId
from app.api.deps import ServiceDep, Staff, require_staff
from app.auth import Principal
from app.db.models import DecisionRecord
from app.labels import LabelError, agreed
from app.schemas import DecisionOut, LabelIn, LabelOut, LabelsIn

router = APIRouter(prefix="/v1/decisions", tags=["staff: decisions"], dependencies=[Staff])


@router.get("", response_model=list[DecisionOut], summary="Decisions, newest first, with filters")
def list_decisions(
    service: ServiceDep,
    kennel_id: OptionalDbId = None,
    species: Optional[str] = None,
    door: Optional[Literal["open", "closed"]] = None,
    error: Optional[bool] = None,
    health: Optional[str] = Query(None, description="'ok' or a camera fault name (dark, blur, frozen, …)"),
    index_version: Optional[str] = None,
    label: Optional[str] = Query(None, description="staff label; '*' for any labelled frame, '-' for unlabelled ones"),
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
    if label == "*":
        q = q.where(DecisionRecord.label.is_not(None))
    elif label == "-":
        q = q.where(DecisionRecord.label.is_(None))
    elif label is not None:
        q = q.where(DecisionRecord.label == label)
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


@router.post("/{frame_id}/label", response_model=LabelOut, summary="What really stood at the door (staff or admin)",
             description="A species of the gallery, or `other` (a hard negative). Audited; counted in "
             "`kennelgate_labels_total`; sent as a `label` event over MQTT and webhooks.")
def label_frame(frame_id: str, body: LabelIn, service: ServiceDep, who: Principal = Depends(require_staff)) -> LabelOut:
    try:
        (r,) = service.label([frame_id], body.species, who)
    except LabelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND if exc.missing else status.HTTP_422_UNPROCESSABLE_ENTITY,
                            str(exc)) from None
    return _out(r)


@router.post("/labels", response_model=list[LabelOut], summary="Label several frames at once (all or nothing)")
def label_frames(body: LabelsIn, service: ServiceDep, who: Principal = Depends(require_staff)) -> list[LabelOut]:
    try:
        rows = service.label(body.frame_ids, body.species, who)
    except LabelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND if exc.missing else status.HTTP_422_UNPROCESSABLE_ENTITY,
                            str(exc)) from None
    return [_out(r) for r in rows]


def _out(r: DecisionRecord) -> LabelOut:
    return LabelOut(frame_id=r.frame_id, label=r.label, door=r.door, species=r.species, agreed=agreed(r),
                    field_photo=r.kept)
