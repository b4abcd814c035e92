"""The health gate's settings: a leaf module (pydantic only), so that reading settings never loads
the image statistics behind the gate (``kennelgate.health``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from kennelgate.health_detector import FaultDetector

OK = "ok"
FAULTS = ("no_signal", "dark", "bright", "occlusion", "blur", "frozen")
_LEARNED_DOC = "{} detector score (0-1) above which the frame is {}; default (null): the limit calibrated with the detector"


class HealthThresholds(BaseModel):
    """When a frame counts as faulty. Defaults: calibrated in docs/corruptions.md."""

    enabled: bool = True
    no_signal_uniform: float = Field(0.95, description="share of pixels within ±6 grey levels of the median")
    dark_p95: float = Field(48.0, description="95th-percentile brightness (0–255) below this = too dark")
    bright: Optional[float] = Field(None, ge=0, le=1, description=_LEARNED_DOC.format("washed-out", "washed out"))
    occlusion: Optional[float] = Field(None, ge=0, le=1, description=_LEARNED_DOC.format("occlusion", "occluded (mud, a cover)"))
    blur: Optional[float] = Field(None, ge=0, le=1, description=_LEARNED_DOC.format("blur", "blurred"))
    frozen_frames: int = Field(40, description="this many identical frames in a row = frozen feed (2 s at 20 fps)")
    frozen_diff: float = Field(0.1, description="mean grey difference (96x72 thumbnail) below this = identical frame")

    def merged(self, overrides: Optional[dict]) -> "HealthThresholds":
        """These thresholds with a kennel's overrides (settings this version no longer has are ignored)."""
        known = {k: v for k, v in (overrides or {}).items() if k in type(self).model_fields}
        return self.model_copy(update=known) if known else self

    def limit(self, fault: str, detector: FaultDetector) -> float:
        manual = getattr(self, fault)
        return detector.thresholds[fault] if manual is None else manual
