"""Admin: kennels (what each door admits, thresholds, decision window) and their device tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit, auth
from app.api.edge import DbId
from app.api.deps import Admin, ServiceDep, require_admin
from app.auth import Principal
from app.db.models import Kennel, Token
from app.kennels import head_count_of, policy_of
from app.schemas import KennelIn, KennelOut, KennelPatch, TokenIn, TokenInfo, TokenOut

router = APIRouter(prefix="/v1", tags=["admin: kennels"], dependencies=[Admin])


def _out(k: Kennel, service) -> KennelOut:
    p = policy_of(k, service.settings)
    max_animals, people_block = head_count_of(k, service.settings)
    return KennelOut(
        id=k.id, name=k.name, admits=k.admits, thresholds=k.thresholds or {}, health=k.health or {},
        window_k=p.k, window_n=p.n, window_seconds=p.seconds, created_at=k.created_at,
        max_animals=max_animals, people_block=people_block,
    )


def _check_policy(k: Kennel, service) -> None:
    try:
        policy_of(k, service.settings)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None


def _get(s, kennel_id: int) -> Kennel:
    k = s.get(Kennel, kennel_id)
    if k is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no kennel {kennel_id}")
    return k


@router.post("/kennels", response_model=KennelOut, status_code=201, summary="Create a kennel")
def create_kennel(body: KennelIn, service: ServiceDep) -> KennelOut:
    try:
        with service.db.session() as s:
            k = Kennel(**body.model_dump())
            _check_policy(k, service)
            s.add(k)
            s.flush()
            return _out(k, service)
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a kennel named {body.name!r} exists") from None


@router.get("/kennels", response_model=list[KennelOut], summary="List kennels")
def list_kennels(service: ServiceDep) -> list[KennelOut]:
    with service.db.session() as s:
        return [_out(k, service) for k in s.scalars(select(Kennel).order_by(Kennel.id))]


@router.get("/kennels/{kennel_id}", response_model=KennelOut, summary="One kennel")
def get_kennel(kennel_id: DbId, service: ServiceDep) -> KennelOut:
    with service.db.session() as s:
        return _out(_get(s, kennel_id), service)


@router.patch("/kennels/{kennel_id}", response_model=KennelOut, summary="Change a kennel (admits, thresholds, window)")
def patch_kennel(
    kennel_id: DbId, body: KennelPatch, service: ServiceDep, who: Principal = Depends(require_admin)
) -> KennelOut:
    """Takes effect on the next frame, no restart; threshold and gate changes are audited."""
    try:
        with service.db.session() as s:
            k = _get(s, kennel_id)
            for key, value in body.model_dump(exclude_unset=True).items():
                if key in ("thresholds", "health"):
                    audit.record(s, who, "kennel", str(kennel_id), key, getattr(k, key) or {}, value or {})
                elif key in ("max_animals", "people_block"):  # door policy: who changed it, and when
                    audit.record(s, who, "kennel", str(kennel_id), key, getattr(k, key), value)
                setattr(k, key, value)
            _check_policy(k, service)
            s.flush()
            out = _out(k, service)
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a kennel named {body.name!r} exists") from None
    service.forget_kennel(kennel_id)
    return out


@router.delete("/kennels/{kennel_id}", status_code=204, summary="Delete a kennel (its decisions are kept)")
def delete_kennel(kennel_id: DbId, service: ServiceDep) -> Response:
    with service.db.session() as s:
        s.delete(_get(s, kennel_id))
    service.forget_kennel(kennel_id)
    service.monitoring.forget(kennel_id)
    service.auth.forget_cache()
    return Response(status_code=204)


@router.post("/kennels/{kennel_id}/tokens", response_model=TokenOut, status_code=201, summary="Issue a device token")
def issue_device_token(kennel_id: DbId, service: ServiceDep, body: TokenIn | None = None) -> TokenOut:
    with service.db.session() as s:
        _get(s, kennel_id)
    token_id, token = auth.issue(service.db, "device", kennel_id, (body.label if body else ""))
    return TokenOut(id=token_id, token=token, kennel_id=kennel_id)


@router.get("/kennels/{kennel_id}/tokens", response_model=list[TokenInfo], summary="A kennel's device tokens (no secrets)")
def list_device_tokens(kennel_id: DbId, service: ServiceDep) -> list[TokenInfo]:
    with service.db.session() as s:
        rows = s.scalars(select(Token).where(Token.kennel_id == kennel_id).order_by(Token.id))
        return [TokenInfo.model_validate(t) for t in rows]


@router.post("/tokens/admin", response_model=TokenOut, status_code=201, summary="Issue another admin token")
def issue_admin_token(service: ServiceDep, body: TokenIn | None = None, who: Principal = Depends(require_admin)) -> TokenOut:
    return _issue(service, "admin", body, who)


@router.post("/tokens/staff", response_model=TokenOut, status_code=201,
             summary="Issue a staff token (review, relabel, override; no tokens or kennels)")
def issue_staff_token(service: ServiceDep, body: TokenIn | None = None, who: Principal = Depends(require_admin)) -> TokenOut:
    return _issue(service, "staff", body, who)


def _issue(service, kind: str, body: TokenIn | None, who: Principal) -> TokenOut:
    token_id, token = auth.issue(service.db, kind, None, (body.label if body else ""))
    with service.db.session() as s:
        audit.event(s, who, "token", f"{kind} token {token_id}", {"issued": kind, "label": body.label if body else ""})
    return TokenOut(id=token_id, token=token)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token (takes effect at once)")
def revoke_token(token_id: DbId, service: ServiceDep) -> Response:
    if not service.auth.revoke(token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active token {token_id}")
    return Response(status_code=204)
