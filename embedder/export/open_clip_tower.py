"""open_clip image towers: any architecture + pretrained tag (hub), local checkpoint, or none."""

from __future__ import annotations

from typing import Optional

import torch

from embedder.export.torch_to_onnx import EncoderWrapper
from embedder.spec import ModelSpec, PreprocessSpec


class _ImageTower(torch.nn.Module):
    def __init__(self, clip_model: torch.nn.Module) -> None:
        super().__init__()
        self.visual = clip_model.visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


def build(model_name: str, pretrained: Optional[str] = None) -> tuple[torch.nn.Module, ModelSpec]:
    """``pretrained`` is an open_clip tag (downloads when online), a checkpoint path, or None."""
    import open_clip

    model = open_clip.create_model(model_name, pretrained=pretrained or None, device="cpu")
    model.eval()
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", model.visual.image_size)
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    resize_mode = cfg.get("resize_mode", "shortest")
    pre = PreprocessSpec(
        input_size=size,
        resize={"shortest": "shorter_center_crop", "squash": "squash", "longest": "letterbox"}.get(
            resize_mode, "shorter_center_crop"
        ),
        crop_pct=1.0,  # open_clip resizes the short side straight to the input size
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
    )
    tower = _ImageTower(model)
    with torch.no_grad():
        dim = int(tower(torch.zeros(1, 3, size, size)).shape[-1])
    tag = pretrained or "random-init"
    spec = ModelSpec(
        name=f"open_clip-{model_name}-{tag}".replace("/", "_"),
        source=f"open_clip {model_name} pretrained={tag}",
        embedding_dim=dim,
        logits_output=None,
        preprocess=pre,
        extra={"open_clip_model": model_name, "pretrained": tag},
    )
    return EncoderWrapper(tower), spec
