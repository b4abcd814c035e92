"""Input checks at the edge: every out-of-range or malformed value is a 422 with a reason, never a
database error turned into a 500.

Typed path and query parameters bound ids and offsets to what both databases store; a middleware
refuses NUL bytes anywhere in the path or query string (PostgreSQL cannot store them); the last
line of defence maps the database's own range and encoding errors to 422.
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, StatementError

from app.db.session import disk_full

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
MAX_OFFSET = 2**31 - 1

DbId = Annotated[int, Path(ge=1, le=MAX_ID, description="a database id")]
OptionalDbId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


def has_control_chars(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def install(app: FastAPI) -> None:
    """The NUL-byte middleware and the database-error handler."""

    @app.middleware("http")
    async def refuse_nul_and_count(request: Request, call_next):
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        if b"\x00" in unquote_to_bytes(raw) or b"\x00" in unquote_to_bytes(request.scope.get("query_string", b"")):
            response = JSONResponse({"detail": "NUL byte in the path or query string"}, status_code=422)
        else:
            response = await call_next(request)
        if response.status_code >= 400:
            service = getattr(request.app.state, "service", None)
            if service is not None:
                service.metrics.refused.labels(str(response.status_code)).inc()
        return response

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"value out of range or not storable: {_short(exc)}"}, status_code=422)

    @app.exception_handler(StatementError)
    async def statement_error(request: Request, exc: StatementError) -> JSONResponse:
        if isinstance(exc.orig, (OverflowError, ValueError)):
            return JSONResponse({"detail": f"value out of range or not storable: {_short(exc.orig)}"}, status_code=422)
        return _server_error(exc)

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        return _server_error(exc)


def _server_error(exc: BaseException) -> JSONResponse:
    """507 with a reason when the disk is full (nothing was half-written); otherwise a plain 500."""
    if disk_full(exc):
        return JSONResponse({"detail": "insufficient storage: the disk is full; nothing was changed"}, status_code=507)
    log.error("unhandled %s: %s", type(exc).__name__, _short(exc))
    return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
