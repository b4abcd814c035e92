"""Request and response bodies of the REST API (they are the OpenAPI documentation too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.api.edge import has_control_chars
from app.library import LibraryError, species_name
from index.folders import OTHER
from index.readiness import ReadinessCard
from kennelgate.health import HealthThresholds


def _health_overrides(v: Optional[dict]) -> Optional[dict]:
    """Only known gate settings, with values the gate accepts."""
    if v is None:
        return None
    unknown = set(v) - set(HealthThresholds.model_fields)
    if unknown:
        raise ValueError(f"unknown health setting(s) {sorted(unknown)}; known: {sorted(HealthThresholds.model_fields)}")
    HealthThresholds(**v)  # type check
    return v


# Scores are mean cosines: a manual threshold outside [-1, 1] is a typo, not a policy.
Threshold = Annotated[float, Field(ge=-1.0, le=1.0)]


def _printable(v: Optional[str]) -> Optional[str]:
    if v is not None and has_control_chars(v):
        raise ValueError("control characters (NUL, newline, …) are not allowed")
    return v


def _species_list(v: list[str]) -> list[str]:
    out = []
    for raw in v:
        try:
            name = species_name(raw)
        except LibraryError as exc:
            raise ValueError(str(exc)) from None
        if name == OTHER:
            raise ValueError("'other' means 'none of the species' and can never be admitted")
        if name not in out:
            out.append(name)
    return out


class KennelIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200, examples=["dog run A"])
    admits: list[str] = Field(..., min_length=1, examples=[["dog"]], description="species whose frames open the door")
    thresholds: dict[str, Threshold] = Field(default_factory=dict, description="manual score thresholds per species (-1…1)")
    health: Optional[dict] = Field(None, description="health-gate overrides, e.g. {\"dark_p95\": 30} for an IR camera")
    window_k: Optional[int] = Field(None, ge=1, le=100, description="K of the last N frames must agree")
    window_n: Optional[int] = Field(None, ge=1, le=100)
    window_seconds: Optional[float] = Field(None, gt=0, le=60)
    max_animals: Optional[int] = Field(None, ge=1, le=20, description="more animals in view keep the door shut "
                                       "(head count; default: the service's max_animals, 1)")
    people_block: Optional[bool] = Field(None, description="a person in view keeps the door shut (head count; default: "
                                         "the service's people_block, off: staff walk dogs in, people are logged)")

    _admits = field_validator("admits")(_species_list)
    _name = field_validator("name")(_printable)


class KennelPatch(BaseModel):
    name: Optional[str] = Field(None, min_length=1, max_length=200)
    admits: Optional[list[str]] = None
    thresholds: Optional[dict[str, Threshold]] = None
    health: Optional[dict] = Field(None, description="health-gate overrides (null or {} = service defaults)")
    window_k: Optional[int] = Field(None, ge=1, le=100)
    window_n: Optional[int] = Field(None, ge=1, le=100)
    window_seconds: Optional[float] = Field(None, gt=0, le=60)
    max_animals: Optional[int] = Field(None, ge=1, le=20, description="null = the service's max_animals")
    people_block: Optional[bool] = Field(None, description="null = the service's people_block")

    _name = field_validator("name")(_printable)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> "KennelPatch":
        nulls = [f for f in ("name", "admits", "thresholds") if f in self.model_fields_set and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null (leave the field out to keep it)")
        return self

    @field_validator("admits")
    @classmethod
    def _admits(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        return None if v is None else _species_list(v)

    @field_validator("health")
    @classmethod
    def _health(cls, v: Optional[dict]) -> Optional[dict]:
        return _health_overrides(v)


class KennelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    admits: list[str]
    thresholds: dict[str, float]
    health: dict = Field(..., description="the kennel's health-gate overrides")
    window_k: int
    window_n: int
    window_seconds: float
    max_animals: int = Field(..., description="more animals in view than this keep the door shut (head count)")
    people_block: bool = Field(..., description="a person in view keeps the door shut (head count)")
    created_at: datetime


class TokenIn(BaseModel):
    label: str = Field("", max_length=200)


class TokenOut(BaseModel):
    id: int
    token: str = Field(..., description="shown once; only its hash is stored")
    kennel_id: Optional[int] = None


class TokenInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    kennel_id: Optional[int]
    label: str
    created_at: datetime
    revoked_at: Optional[datetime]


class SpeciesIn(BaseModel):
    name: str


class SpeciesPatch(BaseModel):
    threshold: Optional[Threshold] = Field(None, description="manual threshold for every kennel (-1…1); null = calibrated")


class SpeciesOut(BaseModel):
    name: str
    photos: int
    indexed: int = Field(..., description="photos in the serving index")
    threshold: Optional[float] = Field(None, description="manual override, if any")
    calibrated_threshold: Optional[float] = None


class PhotoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    breed: Optional[str]
    original_name: str
    size_bytes: int
    added_at: datetime


class Rejected(BaseModel):
    file: str
    reason: str


class UploadOut(BaseModel):
    species: str
    added: int
    photos: int = Field(..., description="the species' photos after this upload")
    rejected: list[Rejected]
    index_version: str
    readiness: Optional[ReadinessCard] = Field(
        None, description="can a door depend on this species yet (GET /v1/species/{name}/readiness)"
    )


class AnimalOut(BaseModel):
    box: list[float] = Field(..., description="x0, y0, x1, y1 as fractions of the frame")
    label: str = Field(..., description="what the detector calls it (it locates; the gallery decides the species)")
    detector_score: float
    species: str = Field(..., description="the gallery's answer for this animal's crop")
    score: float
    accepted: bool


class FrameOut(BaseModel):
    frame_id: str
    species: str = Field(..., description="accepted species, or 'other'")
    score: float
    breed: Optional[str]
    decision: Literal["open", "closed"]
    health: str = Field(..., description="'ok', or the camera fault that kept the frame from being classified")
    reused: bool = Field(False, description="the scene had not changed, so the last classified frame's answer was reused")
    tier: Literal["local", "remote"] = Field(
        "local", description="'remote': this model was unsure and the cascade's big tier answered"
    )
    reason: str
    error: Optional[str] = Field(
        None, description="why the frame was not decided: bad_frame, no_index, internal, log, late (door shut)"
    )
    latency_ms: float
    index_version: str
    animals: list[AnimalOut] = Field(
        default_factory=list, description="animals the head count found in an accepted frame (empty when it did not run)"
    )
    people: int = Field(0, description="people the head count saw in an accepted frame (0 when it did not run)")


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    frame_id: str
    kennel_id: int
    created_at: datetime
    species: str
    best: str
    score: float
    breed: Optional[str]
    accepted: bool
    door: str
    reason: str
    error: bool
    health: str
    reused: bool
    latency_ms: float
    model: str
    index_version: str
    animals: Optional[list[AnimalOut]] = Field(None, description="the head count's animals (when it ran)")
    people: Optional[int] = Field(None, description="people in view (when the head count ran)")
    override: Optional[str] = Field(None, description="a staff override decided the door (open_once, hold_closed, lock)")
    label: Optional[str] = Field(None, description="what staff say really stood at the door")
    labelled_by: Optional[str] = None
    labelled_at: Optional[datetime] = None
    has_thumbnail: bool = False


class LabelIn(BaseModel):
    species: str = Field(..., min_length=1, max_length=100,
                         description="what really stood at the door: a species in the gallery, or 'other'")


class LabelsIn(LabelIn):
    frame_ids: list[str] = Field(..., min_length=1, max_length=1000)


class LabelOut(BaseModel):
    frame_id: str
    label: str
    door: str
    species: str = Field(..., description="what the door answered")
    agreed: bool = Field(..., description="the door's answer was right")
    field_photo: bool = Field(False, description="the whole frame was kept: it is now a field photo of the label")


class OverrideIn(BaseModel):
    action: Literal["open_once", "hold_closed", "lock", "release"]
    minutes: Optional[float] = Field(None, gt=0, le=24 * 60, description="how long it lasts (every override expires)")
    reason: str = Field("", max_length=500)


class OverrideOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kennel_id: int
    action: str
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime
    ended_at: Optional[datetime] = None
    ended_by: Optional[str] = None
    used_by_frame: Optional[str] = None


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict


class RebuildOut(BaseModel):
    state: str
    started: Optional[datetime] = None
    finished: Optional[datetime] = None
    error: Optional[str] = None
    version: Optional[str] = None
    previous: Optional[str] = None
    photos: Optional[int] = None
    skipped: list[Rejected] = Field(default_factory=list)
    promoted: Optional[bool] = Field(None, description="False: the new version was worse on held-out field frames")
    why: Optional[str] = None
    changes: dict[str, dict] = Field(default_factory=dict, description="per species: photos before, after, field, held out")
    judgement: Optional[dict] = None


class IndexOut(BaseModel):
    version: Optional[str]
    model: str
    photos: int
    species: dict[str, int]
    thresholds: dict[str, float]
    rebuild: RebuildOut


class ThresholdChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    actor: str
    scope: str
    target: str
    field: str
    old: Optional[dict]
    new: Optional[dict]


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    kennel_id: int
    kind: str
    state: str
    detail: dict


class KennelHealthOut(BaseModel):
    kennel_id: int
    camera: dict = Field(..., description="camera-fault state over the last frames")
    drift: dict = Field(..., description="recent vs reference window: rates, score shift, state")
    gate: dict = Field(..., description="the health-gate thresholds in force for this kennel")
    alerts: list[AlertOut] = Field(..., description="the latest alerts, newest first")
