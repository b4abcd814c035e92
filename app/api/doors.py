"""Staff: a kennel's door overrides (open once, hold closed, lock, release) and their history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, status

from app.api.deps import ServiceDep, Staff, require_staff
from app.api.edge import DbId
from app.auth import Principal
from app.db.models import Kennel
from app.overrides import OverrideError
from app.schemas import OverrideIn, OverrideOut

router = APIRouter(prefix="/v1/kennels/{kennel_id}", tags=["staff: doors"], dependencies=[Staff])


@router.post("/override", response_model=OverrideOut | None, summary="Override the door (audited; every override expires)",
             description="`open_once`: the next frame opens the door, once. `hold_closed` and `lock`: every frame "
             "keeps it shut until `release` or expiry (defaults: 2, 480 and 15 minutes). A new override replaces the "
             "active one. Answers the override now in force (null after `release`).")
def set_override(kennel_id: DbId, body: OverrideIn, service: ServiceDep,
                 who: Principal = Depends(require_staff)) -> OverrideOut | None:
    with service.db.session() as s:
        kennel = s.get(Kennel, kennel_id)
        if kennel is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no kennel {kennel_id}")
    try:
        return service.override(kennel_id, body.action, who, body.minutes, body.reason)
    except OverrideError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None


@router.get("/overrides", response_model=list[OverrideOut], summary="The door's overrides, newest first")
def list_overrides(kennel_id: DbId, service: ServiceDep, limit: int = Query(50, ge=1, le=1000)) -> list[OverrideOut]:
    return [OverrideOut.model_validate(o) for o in service.overrides.history(kennel_id, limit)]
