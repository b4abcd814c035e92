"""Smaller-precision variants of a built model: static INT8 (QDQ, per-channel) and FP16.

INT8 is calibrated on real photos (the gallery's, by default): activation ranges come from
what the camera will actually see. The variant is a model directory like any other, with its own
fingerprint, so a gallery built with fp32 vectors is never searched with INT8 ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterator, Literal, Optional, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from embedder.images import ImageError
from embedder.spec import MODEL_FILE, ModelSpec, file_sha256
from kennelgate.atomic import staged_dir

CalibrationMethod = Literal["minmax", "percentile", "entropy"]
MIN_COSINE_FP16 = 0.999


class _PhotoReader:
    """onnxruntime's CalibrationDataReader over preprocessed photos, one batch of 1 at a time."""

    def __init__(self, encoder, photos: Sequence[Path], on_progress: Optional[Callable[[int], None]]) -> None:
        self._it = self._batches(encoder, photos, on_progress)

    @staticmethod
    def _batches(encoder, photos, on_progress) -> Iterator[dict]:
        for p in photos:
            try:
                tensor = encoder.preprocess([encoder.load(p)])
            except ImageError:
                continue
            finally:
                if on_progress:
                    on_progress(1)
            yield {encoder.spec.input_name: tensor}

    def get_next(self) -> Optional[dict]:
        return next(self._it, None)

    def rewind(self) -> None:  # part of the reader protocol; one pass is all we use
        pass


def quantize_int8(
    src_dir: Path,
    out_dir: Path,
    photos: Sequence[Path],
    method: CalibrationMethod = "minmax",
    on_progress: Optional[Callable[[int], None]] = None,
) -> ModelSpec:
    """Static INT8 QDQ with per-channel 7-bit weights, calibrated on ``photos``.

    7-bit weights (``reduce_range``) because CPUs without VNNI multiply u8×s8 in 16-bit
    accumulators that saturate. Measured (docs/benchmarks.md, 5-fold CV): min-max calibration
    on OpenVINO keeps the fp32 accuracy (98.85% vs 98.80%); onnxruntime's CPU kernels lose
    0.35–0.85 points with the same file, so INT8 models run on OpenVINO where it is installed.
    """
    from onnxruntime.quantization import CalibrationMethod as CM
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from embedder.runtime import Encoder

    if len(photos) < 16:
        raise ValueError(f"INT8 calibration needs at least 16 photos, got {len(photos)}")
    src = ModelSpec.load(src_dir)
    encoder = Encoder(src_dir, providers="cpu")
    calibrate = {"minmax": CM.MinMax, "percentile": CM.Percentile, "entropy": CM.Entropy}[method]
    with staged_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as work:
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(src_dir / MODEL_FILE), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(tmp / MODEL_FILE), _PhotoReader(encoder, photos, on_progress),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=calibrate,
            extra_options={"CalibTensorRangeSymmetric": False, "CalibMovingAverage": False},
        )
        note = f"static INT8 QDQ per-channel 7-bit, {method} calibration on {len(photos)} photos"
        return _save_variant(src, tmp, Path(out_dir).name, "int8", note, "quantized_from")


def convert_fp16(src_dir: Path, out_dir: Path) -> ModelSpec:
    """FP16 weights and math with fp32 inputs/outputs (for GPUs; CPUs gain nothing from it)."""
    # onnxruntime's own converter: onnxconverter-common's leaves Cast nodes typed wrongly here.
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src = ModelSpec.load(src_dir)
    model = convert_float_to_float16(onnx.load(str(src_dir / MODEL_FILE)), keep_io_types=True)
    with staged_dir(Path(out_dir)) as tmp:
        onnx.save(model, str(tmp / MODEL_FILE))
        cos = min_cosine(src_dir / MODEL_FILE, tmp / MODEL_FILE, src)
        if cos < MIN_COSINE_FP16:
            raise RuntimeError(f"FP16 embeddings drift from fp32 (lowest cosine {cos:.5f} < {MIN_COSINE_FP16})")
        return _save_variant(src, tmp, Path(out_dir).name, "fp16", f"FP16 (lowest cosine to fp32 {cos:.5f})", "converted_from")


def _save_variant(src: ModelSpec, model_dir: Path, name: str, precision: str, note: str, origin_key: str) -> ModelSpec:
    """The variant's spec: the source's preprocessing, its own weights hash (so its own fingerprint)."""
    spec = src.model_copy(update={
        "name": name, "precision": precision, "sha256": file_sha256(model_dir / MODEL_FILE),
        "source": f"{src.source}; {note}", "extra": {**src.extra, origin_key: src.name},
    })
    spec.save(model_dir)
    return spec


def min_cosine(a: Path, b: Path, spec: ModelSpec, n: int = 4) -> float:
    """Lowest per-image cosine between two models' embeddings on smooth random images."""
    rng = np.random.default_rng(0)
    size = spec.preprocess.input_size
    x = rng.normal(0, 1, (n, 3, size, size)).astype(np.float32)
    outs = []
    for path in (a, b):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        e = sess.run([spec.embedding_output], {spec.input_name: x})[0].reshape(n, -1)
        outs.append(e / np.linalg.norm(e, axis=1, keepdims=True))
    return float((outs[0] * outs[1]).sum(1).min())
