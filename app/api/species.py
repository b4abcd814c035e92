"""Admin: species and their photos. Uploading photos indexes them at once — no retraining."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app import audit
from app.api.edge import DbId, has_control_chars
from app.api.deps import ServiceDep, Staff, require_admin, require_staff
from app.auth import Principal
from app.db.models import Photo, Species
from app.library import LibraryError, species_name
from app.schemas import PhotoOut, Rejected, SpeciesIn, SpeciesOut, SpeciesPatch, UploadOut
from app.uploads import UploadLimits, unpack
from index.folders import OTHER
from index.readiness import ReadinessCard, readiness

# Staff may upload and remove photos; thresholds and whole species stay with admins.
router = APIRouter(prefix="/v1/species", tags=["staff: species"], dependencies=[Staff])


def _name(raw: str) -> str:
    try:
        return species_name(raw)
    except LibraryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None


def _out(service, name: str, photos: int, threshold: Optional[float]) -> SpeciesOut:
    d = service.engine.serving
    indexed = len(d.gallery.species[name]) if d is not None and name in d.gallery.species else 0
    return SpeciesOut(
        name=name, photos=photos, indexed=indexed, threshold=threshold,
        calibrated_threshold=d.thresholds.get(name) if d is not None else None,
    )


@router.get("", response_model=list[SpeciesOut], summary="Species, photo counts and thresholds")
def list_species(service: ServiceDep) -> list[SpeciesOut]:
    counts = service.library.counts()
    with service.db.session() as s:
        manual = dict(s.execute(select(Species.name, Species.threshold)).all())
    return [_out(service, n, c, manual.get(n)) for n, c in counts.items()]


@router.post("", response_model=SpeciesOut, status_code=201, summary="Declare a species (photos come next)")
def create_species(body: SpeciesIn, service: ServiceDep) -> SpeciesOut:
    name = _name(body.name)
    with service.db.session() as s:
        if service.library.get_species(s, name) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"species {name!r} exists")
        service.library.ensure_species(s, name)
    return _out(service, name, 0, None)


@router.patch("/{name}", response_model=SpeciesOut, summary="Set or clear a manual threshold for every kennel")
def patch_species(
    name: str, body: SpeciesPatch, service: ServiceDep, who: Principal = Depends(require_admin)
) -> SpeciesOut:
    """Takes effect on the next frame, no restart; the change is audited."""
    name = _name(name)
    if name == OTHER and body.threshold is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "'other' has no threshold")
    with service.db.session() as s:
        sp = service.library.get_species(s, name)
        if sp is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no species {name!r}")
        audit.record(s, who, "species", name, "threshold", sp.threshold, body.threshold)
        sp.threshold = body.threshold
        n = len(sp.photos)
    service.kennels.invalidate()
    return _out(service, name, n, body.threshold)


@router.delete("/{name}", status_code=204, summary="Forget a species: photos, index entries, thresholds")
def delete_species(name: str, service: ServiceDep, who: Principal = Depends(require_admin)) -> Response:
    try:
        service.library.remove_species(_name(name))
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    with service.db.session() as s:
        audit.event(s, who, "species_delete", f"species {_name(name)}")
    service.kennels.invalidate()
    return Response(status_code=204)


@router.get("/{name}/photos", response_model=list[PhotoOut], summary="A species' stored photos")
def list_photos(name: str, service: ServiceDep, limit: int = 500, offset: int = 0) -> list[PhotoOut]:
    name = _name(name)
    with service.db.session() as s:
        sp = service.library.get_species(s, name)
        if sp is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no species {name!r}")
        rows = s.scalars(
            select(Photo).where(Photo.species_id == sp.id).order_by(Photo.id).limit(min(limit, 5000)).offset(offset)
        )
        return [PhotoOut.model_validate(p) for p in rows]


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["files"],
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "images, or one or more .zip archives"},
                "breed": {"type": "string", "maxLength": 100, "description": "breed of photos not in a breed sub-folder"},
            },
        }}},
    }
}


async def _upload_form(request: Request, max_files: int) -> tuple[list[UploadFile], Optional[str]]:
    """The upload's files and breed. Parsed here rather than by FastAPI so that the part limit is
    the documented ``upload_max_files``, not Starlette's default of 1000."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "send the photos as multipart/form-data 'files' parts")
    try:
        form = await request.form(max_files=max_files, max_fields=10)
    except HTTPException as exc:  # Starlette's own refusals (too many parts, malformed body)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"bad multipart body: {exc.detail}") from None
    files = [f for f in form.getlist("files") if not isinstance(f, str)]
    if not files:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "no 'files' part: attach images or a .zip")
    breed = form.get("breed")
    if breed is not None and (not isinstance(breed, str) or len(breed) > 100 or has_control_chars(breed)):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "breed: up to 100 printable characters")
    return files, breed


@router.post(
    "/{name}/photos",
    response_model=UploadOut,
    summary="Upload photos (several files, or a .zip of a folder); creates the species if new",
    description="Valid photos are stored and indexed at once; each rejected file is listed with its reason. "
    "In a zip, sub-folders are breeds (species/breed/photo.jpg). Up to `upload_max_files` files (5000).",
    openapi_extra=_UPLOAD_BODY,
)
async def upload_photos(name: str, request: Request, service: ServiceDep,
                        who: Principal = Depends(require_staff)) -> UploadOut:
    name = _name(name)
    cfg = service.settings
    files, breed = await _upload_form(request, cfg.upload_max_files)
    limits = UploadLimits(cfg.max_bytes, cfg.upload_max_total_bytes, cfg.upload_max_files)
    raw, too_big = [], []
    for f in files:
        # An archive may be larger than one photo; cap it at the request's total budget.
        cap = limits.max_total_bytes if (f.filename or "").lower().endswith(".zip") else limits.max_file_bytes
        data = await f.read(cap + 1)
        if len(data) > cap:
            too_big.append(Rejected(file=f.filename or "?", reason=f"larger than {cap / 1e6:.0f} MB; refused"))
        else:
            raw.append((f.filename or "upload", data))
    unpacked = unpack(raw, limits, breed=breed.strip() or None if breed else None)
    try:
        report = await run_in_threadpool(service.library.add, name, unpacked.candidates)
    except LibraryError as exc:
        detail = {"message": str(exc), "rejected": [r.model_dump() for r in too_big]
                  + [{"file": f, "reason": r} for f, r in unpacked.rejected]}
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail) from None
    service.kennels.invalidate()
    service.update_index_metrics()
    rejected = too_big + [Rejected(file=f, reason=r) for f, r in unpacked.rejected + report.rejected]
    with service.db.session() as s:
        audit.event(s, who, "upload", f"species {name}", {"added": report.added, "rejected": len(rejected)})
    if not report.added and not report.photos:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            {"message": f"no usable photos of {name!r} in this upload", "rejected": [r.model_dump() for r in rejected]},
        )
    return UploadOut(
        species=name, added=report.added, photos=report.photos, rejected=rejected,
        index_version=report.version or (service.engine.serving.version if service.engine.serving else ""),
        readiness=_card(service, name) if name != OTHER else None,
    )


def _card(service, name: str) -> Optional[ReadinessCard]:
    d = service.engine.serving
    if d is None or name not in d.gallery.species:
        return None
    return readiness(d.gallery, d.calibration, name, d.method)


@router.get(
    "/{name}/readiness", response_model=ReadinessCard,
    summary="Can a door depend on this species yet? Predicted accept rate on new photos, confusions, conflicts, advice",
)
def species_readiness(name: str, service: ServiceDep) -> ReadinessCard:
    name = _name(name)
    service.engine.refresh()
    card = _card(service, name)
    if card is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"species {name!r} is not in the index (upload photos first)")
    return card


@router.get("/{name}/photos/{photo_id}/image", summary="A stored photo's bytes", response_class=FileResponse)
def photo_image(name: str, photo_id: DbId, service: ServiceDep) -> FileResponse:
    with service.db.session() as s:
        p = s.get(Photo, photo_id)
        if p is None or p.species.name != _name(name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo {photo_id} of {name!r}")
        path = service.library.path_of(p.sha256, p.suffix)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"photo {photo_id}'s file is missing")
    return FileResponse(path)


@router.delete("/{name}/photos/{photo_id}", status_code=204, summary="Remove one photo (re-indexed at once)")
def delete_photo(name: str, photo_id: DbId, service: ServiceDep, who: Principal = Depends(require_staff)) -> Response:
    try:
        service.library.remove_photos(_name(name), [photo_id])
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    except LibraryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    with service.db.session() as s:
        audit.event(s, who, "photo_delete", f"species {_name(name)}", {"photo": photo_id})
    return Response(status_code=204)
