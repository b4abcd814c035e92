"""The device endpoint: one camera frame in, a door decision out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServiceDep, require_device_or_admin
from app.schemas import FrameOut

router = APIRouter(tags=["device"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}
            },
        },
    }
}


async def _read_frame(request: Request, limit: int) -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "multipart body needs a 'file' part with the image")
        data = await upload.read(limit + 1)
        size = len(data)
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
    if size > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"frame larger than {limit / 1e6:.0f} MB")
    return data


@router.post(
    "/v1/kennels/{kennel_id}/frames",
    response_model=FrameOut,
    summary="Decide one camera frame (device token of this kennel)",
    description="Body: the JPEG/PNG bytes, or multipart with a `file` part. The door opens only when "
    "K of the last N frames agree on a species the kennel admits; every failure keeps it shut.",
    openapi_extra=_BODY_DOC,
    dependencies=[Depends(require_device_or_admin)],
)
async def post_frame(kennel_id: int, request: Request, service: ServiceDep) -> dict:
    kennel = service.kennels.get(kennel_id)
    if kennel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no kennel {kennel_id}")
    data = await _read_frame(request, service.settings.max_bytes)
    outcome = await run_in_threadpool(service.frames.process, kennel, data)
    return outcome.response()
