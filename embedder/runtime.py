"""ONNX Runtime encoder: the serving path. No torch here."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnxruntime as ort
from PIL import Image

from embedder import openvino_runtime
from embedder.images import ImageError, ImageLimits, ImageSource, open_image
from embedder.preprocess import draft_size, to_tensor
from embedder.spec import MODEL_FILE, ModelSpec

log = logging.getLogger(__name__)

# Preference order when the user asks for "auto".
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def choose_providers(requested: Sequence[str] | str = "auto") -> list[str]:
    """Providers to try, best first, limited to what this onnxruntime build has.

    CPU is always last so that a missing GPU or a failed TensorRT build falls back cleanly.
    OpenVINO is also available through the ``openvino`` package (``make_session`` then runs the
    model on OpenVINO's own runtime); "auto" prefers it on a CPU: measured here, the classify
    command runs 20% faster on it in fp32 (docs/command_speed.md) and INT8 keeps its accuracy
    there (onnxruntime's INT8 CPU kernels lose some: docs/benchmarks.md).
    """
    available = set(ort.get_available_providers())
    if isinstance(requested, str):
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    if openvino_runtime.available():
        available.add("OpenVINOExecutionProvider")
    if not requested or list(requested) == ["auto"]:
        wanted = list(PROVIDER_ORDER)
    else:
        wanted = [PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
    chosen = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if missing and list(requested) != ["auto"]:
        log.warning("execution providers not available here, skipped: %s", ", ".join(missing))
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _provider_options(provider: str, model_dir: Path) -> dict:
    if provider == "TensorrtExecutionProvider":
        cache = model_dir / "trt_cache"
        cache.mkdir(exist_ok=True)
        return {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_fp16_enable": True,
        }
    if provider == "OpenVINOExecutionProvider":
        return {"device_type": "CPU"}
    return {}


def make_session(model_path: Path, providers: Sequence[str] | str = "auto", threads: int = 0):
    """An ONNX Runtime session on the best provider here, or OpenVINO's runtime where that is best.

    The graph-optimised model is cached beside the original (``model.opt-<ort version>.onnx``),
    so a restart skips the optimisation passes.
    """
    chosen = choose_providers(providers)
    model_path = Path(model_path)
    if chosen[0] == "OpenVINOExecutionProvider" and "OpenVINOExecutionProvider" not in ort.get_available_providers():
        try:
            return openvino_runtime.OpenVinoSession(model_path, threads)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot load the model falls back
            log.warning("OpenVINO could not load %s (%s); using onnxruntime", model_path, exc)
            chosen = chosen[1:]
    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: a server classifies in bursts, and spinning
    # threads burn the cores the HTTP side and the other kennels need (docs/load.md).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cached = model_path.with_name(f"model.opt-{ort.__version__}.onnx")
    if chosen == ["CPUExecutionProvider"]:
        # Graph optimisation is provider-specific: cache it for the CPU provider only, at the
        # portable level (no CPU-specific layouts); those few passes still run at each load.
        if not (cached.is_file() and cached.stat().st_mtime >= model_path.stat().st_mtime):
            _cache_optimised(model_path, cached)
        if cached.is_file():
            model_path = cached
    return ort.InferenceSession(
        str(model_path), sess_options=opts, providers=[(p, _provider_options(p, model_path.parent)) for p in chosen]
    )


def _cache_optimised(model_path: Path, cached: Path) -> None:
    if not os.access(cached.parent, os.W_OK):
        return
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp)
    try:
        ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        os.replace(tmp, cached)  # readers see the whole optimised file or none
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
        log.warning("could not cache the optimised model (%s)", exc)
        tmp.unlink(missing_ok=True)


@dataclass
class Embedded:
    """Encoder output for a batch: rows align with the images that decoded."""

    vectors: np.ndarray  # (N, D) float32, L2-normalised
    logits: Optional[np.ndarray]  # (N, 1000) ImageNet logits, or None


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Encoder:
    """Images → L2-normalised float32 embeddings, with the model's own preprocessing."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        providers: Sequence[str] | str = "auto",
        threads: int = 0,
        limits: ImageLimits = ImageLimits(),
    ) -> None:
        self.model_dir = Path(model_dir)
        self.spec = ModelSpec.load(self.model_dir)
        self.session = make_session(self.model_dir / MODEL_FILE, providers, threads)
        self.limits = limits
        outputs = [self.spec.embedding_output]
        if self.spec.logits_output:
            outputs.append(self.spec.logits_output)
        self._outputs = outputs

    @property
    def fingerprint(self) -> str:
        return self.spec.fingerprint

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def load(self, source: ImageSource) -> Image.Image:
        """Decode one image for this model (JPEG drafts at the size the model needs)."""
        return open_image(source, self.limits, draft_size=draft_size(self.spec.preprocess))

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        return to_tensor(images, self.spec.preprocess)

    def run(self, batch: np.ndarray) -> Embedded:
        out = self.session.run(self._outputs, {self.spec.input_name: batch})
        vectors = l2_normalise(out[0].reshape(out[0].shape[0], -1))
        logits = out[1].astype(np.float32) if len(out) > 1 else None
        return Embedded(vectors, logits)

    def embed(self, images: Sequence[ImageSource]) -> Embedded:
        """Embed already-valid images; raises ``ImageError`` on the first bad one."""
        if not images:
            return Embedded(np.zeros((0, self.dim), np.float32), None)
        decoded = [im if isinstance(im, Image.Image) and im.mode == "RGB" else self.load(im) for im in images]
        return self.run(self.preprocess(decoded))


__all__ = ["Encoder", "Embedded", "ImageError", "choose_providers", "make_session", "l2_normalise"]
