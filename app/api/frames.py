"""The device endpoints: camera frames in, door decisions out.

``POST …/frames`` takes one frame per request. ``WS …/stream`` keeps one connection per camera:
each binary message is a frame and each answer a JSON text message, in order. The stream saves
the HTTP request, routing and token check of every frame, which is most of the cost of a frame
whose scene has not changed (docs/load.md).
"""

from __future__ import annotations

import asyncio
import collections
import json
import time

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.admission import deadline_after
from app.api.edge import MAX_ID, DbId
from app.api.deps import AnyToken, ServiceDep, client_of, may_send_frames, principal_of, require_device_or_admin
from embedder.images import ImageError
from index.store import GalleryError
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


_MULTIPART_SLACK = 64 * 1024  # part headers and boundaries around the image
# A body that has arrived, even just past the deadline, is still read: it is answered "late" and
# logged like any late frame. One still arriving after this grace is refused unread.
BODY_GRACE_S = 0.1


async def _read_frame(request: Request, limit: int) -> bytes:
    """The frame's bytes, refused with 413 as soon as the body outgrows ``limit``: the size is
    checked while reading, before anything is parsed or spooled to disk."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    cap = limit + (_MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"frame larger than {limit / 1e6:.0f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"frame larger than {limit / 1e6:.0f} MB")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not multipart:
        return data
    request._body = data  # parsed from memory: the bounded body, not a fresh read of the socket
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "multipart body needs a 'file' part with the image")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"frame larger than {limit / 1e6:.0f} MB")
    return data


def _refused(status_code: int, reason: str, retry_after_s: int = 1, body: dict | None = None) -> JSONResponse:
    """An answer that is not a decision: the door is shut, the device may retry after a while."""
    body = body or {}
    content = {**body, "decision": "closed", "error": body.get("error") or "busy", "reason": reason}
    return JSONResponse(content, status_code=status_code, headers={"Retry-After": str(retry_after_s)})


@router.post(
    "/v1/kennels/{kennel_id}/frames",
    response_model=FrameOut,
    summary="Decide one camera frame (device token of this kennel)",
    description="Body: the JPEG/PNG bytes, or multipart with a `file` part. The door opens only when "
    "K of the last N frames agree on a species the kennel admits; every failure keeps it shut. "
    "422: the frame is not a usable image (`error: bad_frame`); 429/503 with Retry-After: too many frames "
    "in flight, or not decided in time (`late`), no index yet (`no_index`), decision log or internal failure; "
    "every answer carries the door (`decision: closed` on any error) and the reason.",
    openapi_extra=_BODY_DOC,
    dependencies=[Depends(require_device_or_admin)],
)
async def post_frame(kennel_id: DbId, request: Request, service: ServiceDep) -> JSONResponse:
    deadline = deadline_after(service.settings.frame_deadline_ms)
    kennel = service.kennels.get(kennel_id)
    if kennel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no kennel {kennel_id}")
    refusal = service.admission.enter(kennel_id)
    if refusal is not None:
        service.metrics.frame_errors.labels("refused").inc()
        return _refused(refusal.status, refusal.reason, refusal.retry_after_s)
    try:
        try:  # a body still dribbling in at the deadline could only be decided late: free the slot
            data = await asyncio.wait_for(_read_frame(request, service.settings.max_bytes),
                                          max(deadline - time.monotonic(), BODY_GRACE_S))
        except asyncio.TimeoutError:
            service.metrics.frame_errors.labels("late").inc()
            return _refused(status.HTTP_503_SERVICE_UNAVAILABLE, "frame body not received within "
                            f"{service.settings.frame_deadline_ms:g} ms", body={"error": "late"})
        outcome = await run_in_threadpool(service.frames.process, kennel, data, deadline)
    finally:
        service.admission.leave(kennel_id)
    if outcome.error == "bad_frame":  # the door stays shut and the frame is logged, as for any frame
        return JSONResponse(outcome.response(), status_code=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if outcome.error is not None:  # late, no_index, log, internal: the server's side, try again
        return _refused(status.HTTP_503_SERVICE_UNAVAILABLE, outcome.reason, body=outcome.response())
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
    except GalleryError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no usable index: {exc}") from exc
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
    try:
        who = await principal_of(service, token, client_of(websocket))
    except HTTPException:  # too many failed checks from this client
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="too many failed token checks; wait")
        return
    if not 1 <= kennel_id <= MAX_ID or not may_send_frames(who, kennel_id) or service.kennels.get(kennel_id) is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="invalid token for this kennel, or no such kennel")
        return
    await websocket.accept()
    # Frames are read as they arrive, decided one at a time; a device that sends faster than that
    # must not get answers that lag ever further behind the scene: frames with more than
    # `stream_backlog` newer ones waiting are answered as skipped, undecided (they open nothing).
    # The receive side is bounded too: a device that sends but stops reading answers has its
    # oldest waiting frames dropped (each still answered "skipped", in order, once it reads again).
    backlog = max(1, service.settings.stream_backlog)
    waiting = _Inbox(backlog + 1)
    receiver = asyncio.create_task(_receive_into(websocket, waiting))
    limit, deadline_ms = service.settings.max_bytes, service.settings.frame_deadline_ms
    skipped = json.dumps({"error": "skipped: newer frames were waiting (send fewer frames per second)", "skipped": True})
    try:
        while True:
            arrived, message = await waiting.get()
            for _ in range(waiting.take_dropped()):
                service.metrics.frames_skipped.labels(str(kennel_id)).inc()
                await websocket.send_text(skipped)
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
            deadline = deadline_after(deadline_ms, arrived)
            if waiting.qsize() > backlog or time.monotonic() > deadline:
                service.metrics.frames_skipped.labels(str(kennel_id)).inc()
                await websocket.send_text(skipped)
                continue
            if len(data) > limit:
                await websocket.send_text(json.dumps({"error": f"frame larger than {limit / 1e6:.0f} MB"}))
                continue
            outcome = await run_in_threadpool(service.frames.process, kennel, data, deadline)
            await websocket.send_text(json.dumps(outcome.response()))
    except WebSocketDisconnect:
        return
    finally:
        receiver.cancel()


class _Inbox:
    """A stream's waiting frames: at most ``size``; beyond, the oldest is dropped and counted."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: collections.deque = collections.deque()
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, item) -> None:
        if len(self._items) >= self.size and item[1]["type"] != "websocket.disconnect":
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    async def get(self):
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def qsize(self) -> int:
        return len(self._items)

    def take_dropped(self) -> int:
        n, self.dropped = self.dropped, 0
        return n


async def _receive_into(websocket: WebSocket, waiting: _Inbox) -> None:
    while True:
        message = await websocket.receive()
        waiting.put((time.monotonic(), message))
        if message["type"] == "websocket.disconnect":
            return
