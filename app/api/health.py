"""Liveness, readiness and Prometheus metrics (no auth: scraped by orchestrators)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict:  # on the event loop: answers even when every worker thread is busy
    return {"status": "ok"}


@router.get("/readyz", summary="Model and index are loaded: frames can be decided")
def readyz(service: ServiceDep) -> JSONResponse:
    ok, detail = service.ready()
    return JSONResponse({"ready": ok, "detail": detail}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics")
def metrics(service: ServiceDep) -> Response:
    service.update_index_metrics()
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
