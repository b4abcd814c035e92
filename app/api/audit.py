"""Staff: the audit trail (thresholds, overrides, relabels, uploads, rebuilds, tokens)."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query

from app import audit
from app.api.deps import ServiceDep, Staff
from app.schemas import AuditOut

router = APIRouter(prefix="/v1/audit", tags=["staff: audit"], dependencies=[Staff])


@router.get("", response_model=list[AuditOut], summary="Who did what, when; newest first")
def list_audit(service: ServiceDep, action: Optional[str] = Query(None, description="threshold, override, label, …"),
               limit: int = Query(200, ge=1, le=5000)) -> list[AuditOut]:
    with service.db.session() as s:
        return [AuditOut(**e.__dict__) for e in audit.trail(s, limit, action)]
