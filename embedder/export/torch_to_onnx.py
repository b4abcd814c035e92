"""Export a torch image encoder to the KennelGate model directory format and prove it matches."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from embedder.spec import MODEL_FILE, ModelSpec, PreprocessSpec, file_sha256
from kennelgate.atomic import staged_dir

OPSET = 17
MIN_COSINE = 0.999


class EncoderWrapper(torch.nn.Module):
    """Adapts a backbone to the ``(embedding[, logits])`` outputs the runtime expects."""

    def __init__(self, features: torch.nn.Module, head: Optional[torch.nn.Module] = None) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor):
        emb = self.features(x)
        if self.head is None:
            return emb
        return emb, self.head(emb)


def sample_batch(spec: PreprocessSpec, n: int = 4, seed: int = 0) -> torch.Tensor:
    """Smooth random images in the model's normalised range, for export checks."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, size=(n, 3, 8, 8)).astype(np.float32)
    img = torch.nn.functional.interpolate(torch.from_numpy(low), size=spec.input_size, mode="bilinear")
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255
    return (img - mean) / std


def onnx_vs_torch_cosine(module: torch.nn.Module, onnx_path: Path, batch: torch.Tensor) -> float:
    """Lowest per-image cosine between torch and ONNX Runtime embeddings."""
    import onnxruntime as ort

    with torch.no_grad():
        ref = module(batch)
    ref = (ref[0] if isinstance(ref, tuple) else ref).reshape(batch.shape[0], -1).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(["embedding"], {"input": batch.numpy()})[0].reshape(batch.shape[0], -1)
    num = (ref * out).sum(1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1) + 1e-12
    return float((num / den).min())


def export_encoder(
    module: torch.nn.Module,
    spec: ModelSpec,
    out_dir: Path,
    check_batch: Optional[torch.Tensor] = None,
) -> ModelSpec:
    """Write ``model.onnx`` + ``model.json`` into ``out_dir`` atomically; verify cosine ≥ 0.999."""
    module = module.eval()
    with staged_dir(Path(out_dir)) as tmp:
        onnx_path = tmp / MODEL_FILE
        dummy = sample_batch(spec.preprocess, n=2)
        outputs = ["embedding"] + (["logits"] if spec.logits_output else [])
        dynamic = {name: {0: "batch"} for name in ["input", *outputs]}
        # The fused attention fast path has no ONNX symbolic; the plain path is equivalent.
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad():
            torch.onnx.export(
                module,
                (dummy,),
                str(onnx_path),
                input_names=["input"],
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        batch = check_batch if check_batch is not None else sample_batch(spec.preprocess, n=4, seed=1)
        cosine = onnx_vs_torch_cosine(module, onnx_path, batch)
        if cosine < MIN_COSINE:
            raise RuntimeError(f"ONNX export does not match torch (min cosine {cosine:.5f} < {MIN_COSINE})")
        spec = spec.model_copy(
            update={"sha256": file_sha256(onnx_path), "extra": {**spec.extra, "onnx_vs_torch_min_cosine": cosine}}
        )
        spec.save(tmp)
    return spec
