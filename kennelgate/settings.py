"""All settings in one place; every field can be set as ``KENNELGATE_<NAME>``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kennelgate" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KENNELGATE_", env_file=".env", extra="ignore")

    home: Path = Field(Path("kennelgate-home"), description="state: gallery versions, reports")
    model_cache: Path = Field(default_factory=_default_cache, description="built models, shared by all homes")
    model: str = Field("efficientnet-lite0", description="model name in the cache, or a model directory")
    providers: str = Field("auto", description="auto, or a comma list: tensorrt,cuda,openvino,cpu")
    threads: int = Field(0, description="ONNX Runtime intra-op threads (0 = one per core)")
    batch_size: int = 16

    # Decision
    method: Literal["knn", "prototype"] = "knn"
    k: int = Field(5, description="neighbours averaged for the kNN score (measured best: docs/results.md)")
    target_accept: float = Field(
        0.99, description="share of a species' own photos (leave-one-out) that must still be accepted"
    )
    target_far: float = Field(0.01, description="false-accept rate wanted on photos filed under 'other'")
    reject_ambiguous: bool = Field(
        False, description="refuse when a second species also passes its own threshold (two animals?)"
    )

    # Input limits
    max_pixels: int = 50_000_000
    max_bytes: int = 64 * 1024 * 1024
    min_side: int = 16

    @property
    def gallery_dir(self) -> Path:
        return self.home / "gallery"


@lru_cache
def get_settings() -> Settings:
    return Settings()
