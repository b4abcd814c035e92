"""Encoders: provider choice, the three export paths, and the proof of the default model."""

import numpy as np
import pytest

from embedder import registry
from embedder.runtime import Encoder, choose_providers
from embedder.spec import ModelSpec, PreprocessSpec
from tests.conftest import DATASETS, MODELS, need_datasets


def test_providers_fall_back_to_cpu():
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    # Asking for GPUs on a machine without them still gives a working CPU session.
    assert choose_providers("tensorrt,cuda") == ["CPUExecutionProvider"]
    assert choose_providers(["cpu"]) == ["CPUExecutionProvider"]


def test_open_clip_image_tower_exports_and_runs(tmp_path):
    """Real open_clip code path on a small architecture without pretrained weights (offline)."""
    d = registry.resolve("open_clip:ViT-S-32", tmp_path)
    spec = ModelSpec.load(d)
    assert spec.embedding_dim == 384 and spec.logits_output is None
    assert spec.extra["onnx_vs_torch_min_cosine"] >= 0.999
    assert spec.preprocess.mean[0] == pytest.approx(0.4815, abs=1e-3)  # CLIP normalisation
    enc = Encoder(d)
    from PIL import Image

    out = enc.embed([Image.new("RGB", (300, 200), (200, 100, 50)), Image.new("RGB", (64, 64), (0, 0, 255))])
    assert out.vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1, atol=1e-5)


def test_existing_int8_onnx_with_user_preprocessing(tmp_path):
    """The Model Zoo INT8 MobileNetV2: its quantized pooled feature becomes the embedding."""
    need_datasets()
    from embedder.export import onnx_file
    from kennelgate.imagenet_check import imagenet_top1

    pre = PreprocessSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear")
    spec = onnx_file.build(
        MODELS / "mobilenetv2-12-int8.onnx", tmp_path / "mnv2", "mobilenetv2-int8", pre,
        feature_tensor="464_quantized", logits_tensor="output",
    )
    assert spec.embedding_dim == 1280 and spec.precision == "int8"
    enc = Encoder(tmp_path / "mnv2")
    files = sorted((DATASETS / "others_objects").iterdir())[:40]
    top1, n = imagenet_top1(enc, files)
    assert n == 40 and top1 >= 0.6  # Model Zoo: 68% top-1 on ImageNet val


@pytest.mark.integration
def test_default_model_proves_its_weights_and_preprocessing(default_model):
    """ImageNet top-1 on the ImageNet sample photos, and ONNX == torch on real photos."""
    need_datasets()
    import torch

    from embedder.export import efficientnet_lite
    from embedder.export.torch_to_onnx import onnx_vs_torch_cosine
    from kennelgate.imagenet_check import imagenet_top1

    enc = Encoder(default_model)
    files = sorted((DATASETS / "others").iterdir()) + sorted((DATASETS / "others_objects").iterdir())
    top1, n = imagenet_top1(enc, files)
    assert n == 198
    assert top1 >= 0.80, f"ImageNet top-1 {top1:.3f}: weights or preprocessing are wrong"
    from embedder.registry import DEFAULT_MODEL

    module, _ = efficientnet_lite.build(name=DEFAULT_MODEL)
    real = sorted((DATASETS / "catsdogs" / "cat").iterdir())[:8]
    batch = torch.from_numpy(enc.preprocess([enc.load(f) for f in real]))
    assert onnx_vs_torch_cosine(module, default_model / "model.onnx", batch) >= 0.999


def test_state_dict_mapping_rejects_a_mismatch():
    import torch

    from embedder.export.efficientnet_lite import map_state_dict

    target = {"a.weight": torch.zeros(2, 3), "b.weight": torch.zeros(4)}
    assert set(map_state_dict({"x": torch.ones(2, 3), "y": torch.ones(4)}, target)) == {"a.weight", "b.weight"}
    with pytest.raises(ValueError, match="does not fit"):
        map_state_dict({"x": torch.ones(3, 2), "y": torch.ones(4)}, target)
    with pytest.raises(ValueError, match="expects"):
        map_state_dict({"x": torch.ones(2, 3)}, target)


def test_an_onnx_file_whose_tensors_already_carry_the_wrapper_names_still_wraps(tmp_path):
    """A file whose own outputs are called ``logits`` and ``embedding`` (as exported by many
    tools) wraps: its tensors are moved aside, and the outputs are the ones asked for."""
    import onnx
    from onnx import TensorProto, helper

    from embedder.export import onnx_file

    rng = np.random.default_rng(0)
    w_emb = helper.make_tensor("w_emb", TensorProto.FLOAT, [3, 8], rng.normal(size=(3, 8)).astype(np.float32).ravel())
    w_log = helper.make_tensor("w_log", TensorProto.FLOAT, [8, 5], rng.normal(size=(8, 5)).astype(np.float32).ravel())
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_emb"], ["embedding"]),  # the file's own "embedding"…
        helper.make_node("MatMul", ["embedding", "w_log"], ["logits"]),  # …and "logits"
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], [w_emb, w_log],
    )
    path = tmp_path / "named.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    spec = onnx_file.build(path, tmp_path / "wrapped", "named", PreprocessSpec(input_size=16),
                           feature_tensor="embedding", logits_tensor="logits")
    assert spec.embedding_dim == 8 and spec.logits_output == "logits"
    enc = Encoder(tmp_path / "wrapped")
    x = rng.uniform(size=(2, 3, 16, 16)).astype(np.float32)
    out = enc.run(x)
    feat = x.mean((2, 3)) @ onnx.numpy_helper.to_array(w_emb)
    assert np.allclose(out.vectors, feat / np.linalg.norm(feat, axis=1, keepdims=True), atol=1e-5)
    assert np.allclose(out.logits, feat @ onnx.numpy_helper.to_array(w_log), atol=1e-4)
