"""OpenVINO's own runtime behind the ``InferenceSession.run`` interface the encoder uses.

onnxruntime's OpenVINO execution provider ships as a separate wheel (``onnxruntime-openvino``)
that replaces onnxruntime itself; the ``openvino`` package runs the same ONNX file directly and
installs beside it. Either one serves ``providers=openvino``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

NAME = "OpenVINO"


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoSession:
    def __init__(self, model_path: Path, threads: int = 0, device: str = "CPU") -> None:
        import openvino as ov

        core = ov.Core()
        # f32: otherwise the CPU plugin may pick a lower precision and drift from the gallery vectors.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        self._model = core.compile_model(str(model_path), device, config)
        self._outputs = {o.get_any_name(): o for o in self._model.outputs}
        self._request = self._model.create_infer_request()
        self.device = device

    def run(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        # One request per call keeps it thread-safe; compile-time work is shared.
        request = self._model.create_infer_request()
        result = request.infer(feeds)
        return [np.asarray(result[self._outputs[n]]) for n in output_names]

    def get_providers(self) -> list[str]:
        return [f"{NAME} ({self.device})"]
