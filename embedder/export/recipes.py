"""The torch module behind a built model, rebuilt from the recipe its ``model.json`` records.

Used for the PyTorch eager baseline of the benchmarks and as the teacher of distilled students.
"""

from __future__ import annotations

from typing import Optional

from embedder.spec import ModelSpec


def base_name(spec: ModelSpec) -> str:
    """The model a variant was made from (INT8/FP16 builds and students keep their origin)."""
    extra = spec.extra
    return extra.get("quantized_from") or extra.get("converted_from") or spec.name


def torch_module(spec: ModelSpec):
    """The fp32 torch module (eval mode) of ``spec``'s base model, or None without torch or a recipe."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    base = base_name(spec)
    if base.startswith("efficientnet-lite"):
        from embedder.export import efficientnet_lite

        return efficientnet_lite.build(name=base)[0].eval()
    if "open_clip_model" in spec.extra:
        from embedder.export import open_clip_tower

        tag: Optional[str] = spec.extra.get("pretrained")
        return open_clip_tower.build(spec.extra["open_clip_model"], None if tag == "random-init" else tag)[0].eval()
    return None
