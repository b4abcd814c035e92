"""``model.json``: everything a runtime needs to know about an exported encoder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field

ResizePolicy = Literal["shorter_center_crop", "squash", "letterbox"]

MODEL_FILE = "model.onnx"
SPEC_FILE = "model.json"


class PreprocessSpec(BaseModel):
    """How a decoded RGB image becomes the network's input tensor."""

    input_size: int = 224
    resize: ResizePolicy = "shorter_center_crop"
    crop_pct: float = Field(0.875, gt=0, le=1.0, description="crop / resized short side (timm convention)")
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


class ModelSpec(BaseModel):
    name: str
    source: str = Field(description="where the weights came from")
    embedding_dim: int
    embedding_output: str = "embedding"
    logits_output: Optional[str] = Field(None, description="ImageNet-1k logits, when the model has them")
    input_name: str = "input"
    preprocess: PreprocessSpec = PreprocessSpec()
    sha256: str = Field("", description="sha256 of model.onnx")
    precision: str = "fp32"
    extra: dict = Field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies the vectors this model produces: weights *and* preprocessing."""
        blob = json.dumps(
            {"sha256": self.sha256, "pre": self.preprocess.model_dump(), "out": self.embedding_output},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def save(self, model_dir: Path) -> None:
        (model_dir / SPEC_FILE).write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, model_dir: Path) -> "ModelSpec":
        return cls.model_validate_json((Path(model_dir) / SPEC_FILE).read_text())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
