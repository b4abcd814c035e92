"""Wrap an existing ONNX classifier/encoder with a user-given preprocessing spec.

The embedding may be any tensor in the graph (e.g. the pooled feature feeding the classifier).
If that tensor is quantized (uint8/int8 feeding a QLinear/QGemm/DequantizeLinear node), we
append a DequantizeLinear with the same scale and zero point so the runtime gets floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from embedder.spec import MODEL_FILE, ModelSpec, PreprocessSpec, file_sha256
from kennelgate.atomic import staged_dir


# Where a quantized op keeps its *output* scale and zero point among its inputs.
_OUTPUT_QPARAMS = {
    "QuantizeLinear": (1, 2),
    "QLinearGlobalAveragePool": (3, 4),
    "QLinearAveragePool": (3, 4),
    "QLinearSigmoid": (3, 4),
    "QLinearLeakyRelu": (3, 4),
    "QLinearConv": (6, 7),
    "QLinearMatMul": (6, 7),
    "QLinearAdd": (6, 7),
    "QLinearMul": (6, 7),
}


def _quant_params(graph: onnx.GraphProto, tensor: str) -> Optional[tuple[str, str]]:
    """Scale and zero point of a quantized tensor, from the op that makes or reads it."""
    for node in graph.node:
        if tensor in node.output and node.op_type in _OUTPUT_QPARAMS:
            s, z = _OUTPUT_QPARAMS[node.op_type]
            return node.input[s], node.input[z]
    for node in graph.node:
        if node.input and node.input[0] == tensor and (
            node.op_type.startswith("QLinear") or node.op_type in ("QGemm", "DequantizeLinear")
        ):
            return node.input[1], node.input[2]
    return None


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename tensor ``old`` everywhere it appears: node inputs and outputs, graph inputs and
    outputs, initializers and shape annotations."""
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        if value.name == old:
            value.name = new


def _free_names(graph: onnx.GraphProto, names: tuple[str, ...]) -> dict[str, str]:
    """Move the file's own tensors off the names the wrapper gives its outputs (a file whose
    feature tensor is already called ``logits`` must wrap too); returns old → new."""
    used = {t for n in graph.node for t in [*n.input, *n.output]} | {v.name for v in [*graph.input, *graph.initializer]}
    moved = {}
    for name in names:
        if name in used:
            new = f"{name}_orig"
            while new in used:
                new += "_"
            _rename_tensor(graph, name, new)
            used.add(new)
            moved[name] = new
    return moved


def _add_identity_output(graph: onnx.GraphProto, source: str, name: str) -> None:
    graph.node.append(helper.make_node("Identity", [source], [name], name=f"kennelgate_{name}"))
    graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))


def build(
    onnx_path: Path,
    out_dir: Path,
    name: str,
    preprocess: PreprocessSpec,
    feature_tensor: Optional[str] = None,
    logits_tensor: Optional[str] = None,
) -> ModelSpec:
    """Copy ``onnx_path`` into a model directory exposing ``input``/``embedding``(/``logits``)."""
    model = onnx.load(str(onnx_path))
    graph = model.graph
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1:
        raise ValueError(f"expected one image input, found {inputs}")
    moved = _free_names(graph, ("embedding", "logits") + (("input",) if inputs[0] != "input" else ()))
    feature = moved.get(feature_tensor or graph.output[0].name, feature_tensor or graph.output[0].name)
    logits_tensor = moved.get(logits_tensor, logits_tensor) if logits_tensor else None
    quant = _quant_params(graph, feature)
    if quant is not None:
        deq = f"{feature}_kennelgate_float"
        graph.node.append(helper.make_node("DequantizeLinear", [feature, *quant], [deq], name="kennelgate_dequant"))
        feature = deq
    _add_identity_output(graph, feature, "embedding")
    if logits_tensor:
        _add_identity_output(graph, logits_tensor, "logits")
    # Make the batch dimension free so devices can batch frames.
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"
    # ONNX Runtime validates the graph when the check session below loads it.

    with staged_dir(Path(out_dir)) as tmp:
        if inputs[0] != "input":
            # Rename the image input so every model directory looks the same to the runtime.
            for node in graph.node:
                node.input[:] = ["input" if i == inputs[0] else i for i in node.input]
            for i in graph.input:
                if i.name == inputs[0]:
                    i.name = "input"
        onnx.save(model, str(tmp / MODEL_FILE))
        sess = ort.InferenceSession(str(tmp / MODEL_FILE), providers=["CPUExecutionProvider"])
        size = preprocess.input_size
        emb = sess.run(["embedding"], {"input": np.zeros((2, 3, size, size), np.float32)})[0]
        spec = ModelSpec(
            name=name,
            source=f"onnx file {Path(onnx_path).name} (feature {feature_tensor or 'first output'})",
            embedding_dim=int(np.prod(emb.shape[1:])),
            logits_output="logits" if logits_tensor else None,
            preprocess=preprocess,
            sha256=file_sha256(tmp / MODEL_FILE),
            precision="int8" if quant is not None else "fp32",
        )
        spec.save(tmp)
    return spec
