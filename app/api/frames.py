"""The device endpoints: camera frames in, door decisions out.

``POST …/frames`` takes one frame per request. ``WS …/stream`` keeps one connection per camera:
each binary message is a frame and each answer a JSON text message, in order. The stream saves
the HTTP request, routing and token check of every frame, which is most of the cost of a frame
whose scene has not changed (docs/load.md).
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import AnyToken, ServiceDep, may_send_frames, principal_of, require_device_or_admin
from embedder.images import ImageError
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
async def post_frame(kennel_id: int, request: Request, service: ServiceDep) -> JSONResponse:
    kennel = service.kennels.get(kennel_id)
    if kennel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no kennel {kennel_id}")
    data = await _read_frame(request, service.settings.max_bytes)
    outcome = await run_in_threadpool(service.frames.process, kennel, data)
    # The response is built by our own code (FrameOutcome.response, checked against FrameOut in the
    # tests): returned as is, it skips a validation pass on the hottest endpoint.
    return JSONResponse(outcome.response())


@router.post(
    "/v1/classify",
    summary="Classify one image, no door (the big tier of another server's cascade)",
    description="Body: image bytes. Answers which species the gallery sees, with score, threshold "
    "decision and top matches; nothing is logged and no door window is touched. Any valid token.",
    openapi_extra=_BODY_DOC,
    dependencies=[AnyToken],
)
async def classify_image(request: Request, service: ServiceDep) -> JSONResponse:
    data = await _read_frame(request, service.settings.max_bytes)
    try:
        answer = await run_in_threadpool(service.frames.classify, data)
    except ImageError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"bad image: {exc}") from exc
    return JSONResponse(answer)


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@router.websocket("/v1/kennels/{kennel_id}/stream")
async def stream_frames(websocket: WebSocket, kennel_id: int) -> None:
    """A camera's frames over one WebSocket (``Authorization: Bearer`` on the handshake).

    Send each frame as a binary message (JPEG/PNG bytes); each gets the same JSON answer as
    ``POST …/frames``, in order. The token is re-checked on every frame, so a revoked token or a
    deleted kennel ends the stream (close code 1008) at once. Text messages get an error answer.
    """
    service = websocket.app.state.service
    token = _bearer(websocket.headers.get("authorization", ""))
    who = await principal_of(service, token)
    if not may_send_frames(who, kennel_id) or service.kennels.get(kennel_id) is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="invalid token for this kennel, or no such kennel")
        return
    await websocket.accept()
    # Frames are read as they arrive, decided one at a time; a device that sends faster than that
    # must not get answers that lag ever further behind the scene: frames with more than
    # `stream_backlog` newer ones waiting are answered as skipped, undecided (they open nothing).
    waiting: asyncio.Queue = asyncio.Queue()
    receiver = asyncio.create_task(_receive_into(websocket, waiting))
    limit, backlog = service.settings.max_bytes, max(1, service.settings.stream_backlog)
    try:
        while True:
            message = await waiting.get()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await websocket.send_text(json.dumps({"error": "send each frame as a binary message (JPEG/PNG bytes)"}))
                continue
            kennel = service.kennels.get(kennel_id)
            if not may_send_frames(await principal_of(service, token), kennel_id) or kennel is None:
                await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="token revoked or kennel deleted")
                return
            if waiting.qsize() > backlog:
                service.metrics.frames_skipped.labels(str(kennel_id)).inc()
                await websocket.send_text(json.dumps({"error": "skipped: newer frames were waiting (send fewer frames per second)", "skipped": True}))
                continue
            if len(data) > limit:
                await websocket.send_text(json.dumps({"error": f"frame larger than {limit / 1e6:.0f} MB"}))
                continue
            outcome = await run_in_threadpool(service.frames.process, kennel, data)
            await websocket.send_text(json.dumps(outcome.response()))
    except WebSocketDisconnect:
        return
    finally:
        receiver.cancel()


async def _receive_into(websocket: WebSocket, waiting: asyncio.Queue) -> None:
    while True:
        message = await websocket.receive()
        waiting.put_nowait(message)
        if message["type"] == "websocket.disconnect":
            return
