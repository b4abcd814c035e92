"""ImageNet top-1 of a model's logits on photos named ``<wnid>_*`` (a check of weights + preprocessing)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from embedder.batch import embed_sources
from embedder.runtime import Encoder


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids in class-index order (shipped with timm)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(1000)]


def imagenet_top1(encoder: Encoder, files: Sequence[Path], on_progress: Optional[Callable[[int], None]] = None) -> tuple[float, int]:
    if not encoder.spec.logits_output:
        raise ValueError(f"model {encoder.spec.name} has no ImageNet logits output")
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    labelled = [(f, index[f.name.split("_")[0]]) for f in files if f.name.split("_")[0] in index]
    result = embed_sources(encoder, [f for f, _ in labelled], on_progress=on_progress)
    labels = np.array([labelled[i][1] for i in result.ok])
    return float((result.logits.argmax(1) == labels).mean()), len(labels)
