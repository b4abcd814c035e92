"""Named models in the shared cache; the default one builds itself on first use (offline)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

from embedder.spec import MODEL_FILE, SPEC_FILE, ModelSpec

log = logging.getLogger(__name__)

# Lite1 (240 px): at the default operating point it lets in a third of Lite0's unknowns and swaps
# half as many cats and dogs, at the same command speed on OpenVINO (docs/admit.md, docs/command_speed.md).
DEFAULT_MODEL = "efficientnet-lite1"


def is_model_dir(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() and (path / SPEC_FILE).is_file()


def list_models(cache: Path) -> list[ModelSpec]:
    if not cache.is_dir():
        return []
    return [ModelSpec.load(d) for d in sorted(cache.iterdir()) if d.is_dir() and is_model_dir(d)]


def build_named(name: str, cache: Path) -> ModelSpec:
    """Build a model the registry knows by name: ``efficientnet-lite0``, ``-lite1`` (default),
    ``-lite2`` or ``open_clip:ARCH[:TAG]``.

    Needs the ``export`` extra (torch, timm, open_clip); the serving install never calls this.
    """
    from embedder.export.torch_to_onnx import export_encoder

    if name.startswith("efficientnet-lite"):
        from embedder.export import efficientnet_lite

        module, spec = efficientnet_lite.build(name=name)
    elif name.startswith("open_clip:"):
        from embedder.export import open_clip_tower

        _, arch, *tag = name.split(":", 2)
        module, spec = open_clip_tower.build(arch, tag[0] if tag else None)
    else:
        raise KeyError(
            f"unknown model {name!r}: use efficientnet-lite0, efficientnet-lite1 (default), efficientnet-lite2, "
            "open_clip:ARCH[:TAG], or a model directory"
        )
    spec = spec.model_copy(update={"name": name.replace(":", "-").replace("/", "_")})
    return export_encoder(module, spec, cache / spec.name)


def resolve(
    name_or_dir: str,
    cache: Path,
    on_build: Optional[Callable[[str], None]] = None,
) -> Path:
    """Model directory for ``name_or_dir``, building a named model into the cache if missing."""
    as_path = Path(name_or_dir)
    if is_model_dir(as_path):
        return as_path
    cached = cache / name_or_dir.replace(":", "-").replace("/", "_")
    if is_model_dir(cached):
        return cached
    if on_build:
        on_build(name_or_dir)
    build_named(name_or_dir, cache)
    return cached
