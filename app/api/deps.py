"""Shared FastAPI dependencies: the service object and bearer-token checks."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from starlette.concurrency import run_in_threadpool

from app.api.edge import DbId
from app.auth import Authenticator, Principal
from app.service import Service

bearer = HTTPBearer(auto_error=False, description="admin token, or a kennel's device token for its frames")


# Plain logic: async, so FastAPI runs it on the event loop instead of a threadpool hop per request.
async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def principal_of(service: Service, token: Optional[str], client: str = "") -> Optional[Principal]:
    """Who holds ``token``, or None. Every frame carries a token: answered from the cache on the
    event loop, and from the database (in a worker thread) only on a miss. A ``client`` with too
    many failed checks in the last minute is refused (429) before any check."""
    wait = service.auth.refused_for(client) if client else None
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed token checks from this client; wait",
                            headers={"Retry-After": str(wait)})
    who = service.auth.cached(token) if token else None
    if who is Authenticator.MISS:
        who = await run_in_threadpool(service.auth.identify, token)
    if who is None and token and client:
        service.auth.failed(client)
    return who


def client_of(connection) -> str:
    return connection.client.host if connection.client else ""


def may_send_frames(who: Optional[Principal], kennel_id: int) -> bool:
    return who is not None and (who.kind == "admin" or who.kennel_id == kennel_id)


CONSOLE_COOKIE = "kennelgate_console"  # the console's sign-in: a staff or admin token, HttpOnly, SameSite=Strict
CONSOLE_HEADER = "X-KennelGate-Console"  # the console's scripts send it on every change (a cross-site form cannot)


async def _principal(
    request: Request, service: ServiceDep, creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer)
) -> Principal:
    """The bearer token's holder; or, for the staff console's own requests, its sign-in cookie.
    A change made with the cookie must carry ``CONSOLE_HEADER``: no other site can add it."""
    token = creds.credentials if creds else None
    from_cookie = token is None and CONSOLE_COOKIE in request.cookies
    if from_cookie:
        token = request.cookies[CONSOLE_COOKIE]
        if request.method not in ("GET", "HEAD") and request.headers.get(CONSOLE_HEADER) != "1":
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"console changes need the {CONSOLE_HEADER} header")
    who = await principal_of(service, token, client_of(request))
    if who is not None and from_cookie and not who.is_staff:
        who = None  # device tokens never sign in to the console
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or invalid token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who


async def require_admin(who: Principal = Depends(_principal)) -> Principal:
    if who.kind != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint needs an admin token")
    return who


async def require_device_or_admin(kennel_id: DbId, who: Principal = Depends(_principal)) -> Principal:
    if may_send_frames(who, kennel_id):
        return who
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this device token belongs to another kennel")


Admin = Depends(require_admin)
AnyToken = Depends(_principal)


async def require_staff(who: Principal = Depends(_principal)) -> Principal:
    if not who.is_staff:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint needs a staff or admin token")
    return who


Staff = Depends(require_staff)
