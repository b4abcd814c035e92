"""Admin: the serving index and its rebuild."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, Query, status

from app import audit
from app.api.deps import Admin, ServiceDep, require_admin
from app.auth import Principal
from app.schemas import IndexOut, Rejected, RebuildOut

router = APIRouter(prefix="/v1/index", tags=["admin: index"], dependencies=[Admin])


def _rebuild_out(service) -> RebuildOut:
    st = service.rebuild_status
    r = st.report
    return RebuildOut(
        state=st.state, started=st.started, finished=st.finished, error=st.error,
        version=r.version if r else None, previous=r.previous if r else None, photos=r.photos if r else None,
        skipped=[Rejected(file=f, reason=why) for f, why in (r.skipped if r else [])],
        promoted=r.promoted if r else None, why=r.why if r else None, changes=r.changes if r else {},
        judgement={k: asdict(v) for k, v in (("field", r.field_judgement), ("uploads", r.upload_judgement)) if v}
        if r else None,
    )


@router.get("", response_model=IndexOut, summary="Serving version, species sizes, thresholds, last rebuild")
def get_index(service: ServiceDep) -> IndexOut:
    d = service.engine.serving
    return IndexOut(
        version=d.version if d else None,
        model=service.engine.encoder.spec.name,
        photos=len(d.gallery) if d else 0,
        species={n: len(p) for n, p in d.gallery.species.items()} if d else {},
        thresholds=d.thresholds if d else {},
        rebuild=_rebuild_out(service),
    )


@router.post("/rebuild", response_model=RebuildOut, status_code=202, summary="Re-embed every photo and swap the index in")
def start_rebuild(service: ServiceDep, who: Principal = Depends(require_admin),
                  force: bool = Query(False, description="promote even if judging finds it worse (audited)")) -> RebuildOut:
    if not service.start_rebuild(force):
        raise HTTPException(status.HTTP_409_CONFLICT, "a rebuild is already running")
    with service.db.session() as s:
        audit.event(s, who, "rebuild", "index", {"serving": service.engine.serving.version if service.engine.serving else None,
                                                 "force": force})
    return _rebuild_out(service)


@router.get("/rebuild", response_model=RebuildOut, summary="State of the last rebuild")
def rebuild_state(service: ServiceDep) -> RebuildOut:
    return _rebuild_out(service)
