"""Kennel health (camera faults, drift), alerts, and the audit trail of manual thresholds."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select

from app.api.edge import DbId, OptionalDbId
from app.api.deps import Admin, ServiceDep, require_device_or_admin
from app.db.models import Alert, ThresholdChange
from app.schemas import AlertOut, KennelHealthOut, ThresholdChangeOut

router = APIRouter(prefix="/v1", tags=["monitoring"])


def _kennel(service, kennel_id: int):
    cfg = service.kennels.get(kennel_id)
    if cfg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no kennel {kennel_id}")
    return cfg


@router.get(
    "/kennels/{kennel_id}/health", response_model=KennelHealthOut, summary="Camera faults and drift of one kennel",
    dependencies=[Depends(require_device_or_admin)],
)
def kennel_health(kennel_id: DbId, service: ServiceDep, alerts: Annotated[int, Query(ge=0, le=500)] = 20) -> KennelHealthOut:
    cfg = _kennel(service, kennel_id)
    state = service.monitoring.health(kennel_id)
    with service.db.session() as s:
        rows = s.scalars(
            select(Alert).where(Alert.kennel_id == kennel_id).order_by(Alert.id.desc()).limit(alerts)
        ).all()
        recent = [AlertOut.model_validate(a) for a in rows]
    return KennelHealthOut(kennel_id=kennel_id, gate=cfg.health.model_dump(), alerts=recent, **state)


@router.post(
    "/kennels/{kennel_id}/health/reset", response_model=KennelHealthOut, dependencies=[Admin],
    summary="Start a new drift reference (after refreshing the gallery or moving the camera)",
)
def reset_reference(kennel_id: DbId, service: ServiceDep) -> KennelHealthOut:
    _kennel(service, kennel_id)
    service.monitoring.reset_reference(kennel_id)
    return kennel_health(kennel_id, service)


@router.get("/alerts", response_model=list[AlertOut], dependencies=[Admin], summary="Alerts of every kennel, newest first")
def list_alerts(service: ServiceDep, kennel_id: OptionalDbId = None, kind: Optional[str] = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AlertOut]:
    q = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if kennel_id is not None:
        q = q.where(Alert.kennel_id == kennel_id)
    if kind:
        q = q.where(Alert.kind == kind)
    with service.db.session() as s:
        return [AlertOut.model_validate(a) for a in s.scalars(q)]


@router.get(
    "/audit/thresholds", response_model=list[ThresholdChangeOut], dependencies=[Admin],
    summary="Who changed which manual threshold or gate setting, and when",
)
def threshold_changes(service: ServiceDep, limit: int = 100) -> list[ThresholdChangeOut]:
    with service.db.session() as s:
        rows = s.scalars(select(ThresholdChange).order_by(ThresholdChange.id.desc()).limit(min(max(limit, 1), 1000)))
        return [ThresholdChangeOut.model_validate(r) for r in rows]
