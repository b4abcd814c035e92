"""Embed many files: decode in threads, encode in batches, keep going past bad files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from embedder.images import ImageError, ImageSource
from embedder.runtime import Encoder


@dataclass
class BatchResult:
    ok: list[int] = field(default_factory=list)  # indices into the input that embedded
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    logits: Optional[np.ndarray] = None
    errors: dict[int, str] = field(default_factory=dict)  # index → reason


def embed_sources(
    encoder: Encoder,
    sources: Sequence[ImageSource],
    batch_size: int = 16,
    on_progress: Optional[Callable[[int], None]] = None,
    workers: int = 2,
) -> BatchResult:
    """Embed ``sources``; a file that fails to decode is reported in ``errors`` and skipped."""
    result = BatchResult()
    vecs: list[np.ndarray] = []
    logs: list[np.ndarray] = []

    def decode(i: int):
        try:
            return i, encoder.preprocess([encoder.load(sources[i])])[0], None
        except ImageError as exc:
            return i, None, str(exc)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(sources), batch_size):
            chunk = range(start, min(start + batch_size, len(sources)))
            tensors, idx = [], []
            for i, tensor, error in pool.map(decode, chunk):
                if error is not None:
                    result.errors[i] = error
                else:
                    tensors.append(tensor)
                    idx.append(i)
            if tensors:
                out = encoder.run(np.stack(tensors))
                vecs.append(out.vectors)
                if out.logits is not None:
                    logs.append(out.logits)
                result.ok += idx
            if on_progress:
                on_progress(len(chunk))
    result.vectors = np.concatenate(vecs) if vecs else np.zeros((0, encoder.dim), np.float32)
    result.logits = np.concatenate(logs) if logs else None
    return result
