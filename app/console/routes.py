"""The console's pages. Thin: each reads what it shows from ``app.console.views`` and renders a
template; every change the pages make is a call to the REST API from ``static/console.js``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import audit
from app.api.deps import CONSOLE_COOKIE, ServiceDep, client_of, principal_of
from app.auth import Principal
from app.console import views
from app.overrides import DEFAULT_MINUTES
from index.folders import OTHER
from index.readiness import readiness

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
COOKIE_DAYS = 7


def mount(app) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)


async def signed_in(request: Request, service: ServiceDep) -> Principal:
    who = await principal_of(service, request.cookies.get(CONSOLE_COOKIE), client_of(request))
    if who is None or not who.is_staff:
        raise HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": "/console/login"})
    return who


User = Annotated[Principal, Depends(signed_in)]


def page(request: Request, name: str, who: Optional[Principal], status_code: int = 200, **ctx) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"who": who, "section": name.split(".")[0], **ctx},
                                      status_code=status_code)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console/", status.HTTP_303_SEE_OTHER)


@router.get("/console/login")
def login_page(request: Request, error: str = "") -> HTMLResponse:
    return page(request, "login.html", None, error=error)


@router.post("/console/login")
async def login(request: Request, service: ServiceDep, token: Annotated[str, Form()] = "") -> Response:
    who = await principal_of(service, token.strip(), client_of(request))
    if who is None:
        return page(request, "login.html", None, status.HTTP_401_UNAUTHORIZED, error="That token is not valid (or was revoked).")
    if not who.is_staff:
        return page(request, "login.html", None, status.HTTP_403_FORBIDDEN,
                    error="Device tokens cannot sign in to the console: use a staff or admin token.")
    out = RedirectResponse("/console/", status.HTTP_303_SEE_OTHER)
    out.set_cookie(CONSOLE_COOKIE, token.strip(), max_age=COOKIE_DAYS * 86400, httponly=True, samesite="strict",
                   secure=request.url.scheme == "https", path="/")
    return out


@router.post("/console/logout")
def logout() -> Response:
    out = RedirectResponse("/console/login", status.HTTP_303_SEE_OTHER)
    out.delete_cookie(CONSOLE_COOKIE, path="/")
    return out


@router.get("/console/")
def kennels_page(request: Request, service: ServiceDep, who: User, live: bool = False) -> HTMLResponse:
    return page(request, "kennels_live.html" if live else "kennels.html", who, kennels=views.kennels(service),
                kept=views.kept_frames(service))


@router.get("/console/kennels/{kennel_id}")
def kennel_page(kennel_id: int, request: Request, service: ServiceDep, who: User) -> HTMLResponse:
    k = views.kennel(service, kennel_id)
    if k is None:
        return page(request, "error.html", who, 404, message=f"No kennel {kennel_id}.")
    return page(request, "kennel.html", who, k=k, history=views.door_history(service, kennel_id),
                defaults=DEFAULT_MINUTES)


@router.get("/console/review")
def review_page(
    request: Request, service: ServiceDep, who: User, kennel: Optional[int] = None,
    outcome: str = "rejected", hours: Optional[float] = Query(None, gt=0), page_no: int = Query(0, ge=0, alias="page"),
) -> HTMLResponse:
    rows = views.decisions(service, kennel, outcome, hours, limit=100, offset=100 * page_no)
    kennels = views.kennel_names(service)
    return page(request, "review.html", who, rows=rows, kennels=kennels, names=dict(kennels), kennel=kennel,
                outcome=outcome, outcomes=views.OUTCOMES, hours=hours, page_no=page_no,
                choices=views.label_choices(service))


@router.get("/console/species")
def species_page(request: Request, service: ServiceDep, who: User) -> HTMLResponse:
    service.engine.refresh()
    d = service.engine.serving
    cards = {}
    for name in service.library.counts():
        if d is not None and name in d.gallery.species and name != OTHER:
            cards[name] = readiness(d.gallery, d.calibration, name, d.method)
    return page(request, "species.html", who, counts=service.library.counts(), cards=cards)


@router.get("/console/species/{name}")
def species_one(name: str, request: Request, service: ServiceDep, who: User) -> HTMLResponse:
    photos = views.photos(service, name)
    if photos is None:
        return page(request, "error.html", who, 404, message=f"No species {name!r}.")
    d = service.engine.serving
    card = readiness(d.gallery, d.calibration, name, d.method) if d and name in d.gallery.species and name != OTHER else None
    return page(request, "species_one.html", who, name=name, photos=photos, card=card)


@router.get("/console/audit")
def audit_page(request: Request, service: ServiceDep, who: User, action: Optional[str] = None) -> HTMLResponse:
    with service.db.session() as s:
        entries = audit.trail(s, 300, action or None)
    return page(request, "audit.html", who, entries=entries, action=action or "")


@router.get("/console/tokens")
def tokens_page(request: Request, service: ServiceDep, who: User) -> HTMLResponse:
    if who.kind != "admin":
        return page(request, "error.html", who, 403, message="Staff cannot manage tokens: ask an admin.")
    return page(request, "tokens.html", who, tokens=views.tokens(service))
