"""Micro-batching: frames from several kennels that need the encoder at the same moment share one
run of it.

On a CPU an encoder run on 8 frames costs far less than 8 runs on one (docs/benchmarks.md), and a
busy server always has frames waiting. The first frame waits at most ``linger_ms`` for company;
when the encoder is busy, frames pile up anyway and go together in the next run. One run at a time:
on two cores, parallel runs only fight over the same cores.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from app.batching import BatchingWorker
from embedder.runtime import Encoder


class EncoderBatcher(BatchingWorker):
    def __init__(self, encoder: Encoder, max_batch: int = 8, linger_ms: float = 2.0, timeout_s: float = 30.0) -> None:
        super().__init__("encoder-batcher", max_batch, linger_s=linger_ms / 1000.0, timeout_s=timeout_s)
        self.encoder = encoder

    def embed(self, tensor: np.ndarray, deadline: Optional[float] = None) -> np.ndarray:
        """The L2-normalised embedding of one preprocessed frame (``(1, 3, S, S)``): ``(D,)``.
        Past ``deadline`` (monotonic) a waiting frame is withdrawn: ``TimeoutError``."""
        if self.max_batch == 1:  # no batching: no thread hop either
            return self.encoder.run(tensor).vectors[0]
        return self.submit(tensor, deadline)

    def handle(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.encoder.run(np.concatenate(tensors)).vectors)
