"""Smaller students that reproduce a teacher's embeddings: "train large, then compress".

A student starts as a copy of the teacher's torch module, optionally channel-pruned
(``embedder.export.prune``), and may see the frame at a lower resolution. It is trained on
unlabelled photos (the gallery's, or frames a camera logged) to give the same L2-normalised
embedding as the teacher gives at full resolution: cosine loss, no labels, so any photo the
shelter has will do and no species is favoured. The result is exported like any model, with
its own fingerprint, so a gallery is always re-embedded with the student before it is searched.

Teacher targets are computed once per augmented view with the teacher's ONNX model (fast), and
the views are kept as uint8 crops at the teacher's input size; the student sees the same crop
resized to its own size, so teacher and student always agree on what is in the frame.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from embedder.export.recipes import torch_module
from embedder.export.torch_to_onnx import EncoderWrapper, export_encoder
from embedder.images import ImageError
from embedder.preprocess import draft_size, normalise, resize_and_crop
from embedder.runtime import Encoder
from embedder.spec import ModelSpec

log = logging.getLogger(__name__)
Progress = Optional[Callable[[int], None]]


@dataclass
class DistillConfig:
    input_size: Optional[int] = None  # the student's input side; None = the teacher's
    prune_ratio: float = 0.0  # share of prunable channels removed before training
    epochs: int = 6
    batch_size: int = 32
    lr: Optional[float] = None  # None: 1e-4 to fine-tune an intact copy, 5e-4 to recover a pruned one
    views: int = 3  # augmented views of each photo (the teacher embeds each once)
    holdout: float = 0.1  # share of photos kept out of training to measure the student
    seed: int = 0


@dataclass
class DistillReport:
    photos: int
    train_views: int
    holdout_views: int
    cosine_before: float  # student vs teacher on held-out views, before training
    cosine_after: float
    epochs: int
    prune_ratio: float
    params_teacher: int
    params_student: int


def student_name(teacher: str, cfg: DistillConfig) -> str:
    parts = [teacher]
    if cfg.prune_ratio > 0:
        parts.append(f"pruned{round(100 * cfg.prune_ratio)}")
    if cfg.input_size:
        parts.append(f"s{cfg.input_size}")
    if len(parts) == 1:
        parts.append("student")
    return "-".join(parts)


def _random_view(image: Image.Image, size: int, short: int, rng: random.Random) -> Image.Image:
    """A random crop covering 45-100% of the resized photo, maybe mirrored, at ``size`` px."""
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC, reducing_gap=3.0)
    w, h = image.size
    area = rng.uniform(0.45, 1.0) * w * h
    aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    cw = int(min(w, round(math.sqrt(area * aspect))))
    ch = int(min(h, round(math.sqrt(area / aspect))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    view = image.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BICUBIC)
    return ImageOps.mirror(view) if rng.random() < 0.5 else view


def teacher_views(
    teacher: Encoder, photos: Sequence[Path], views: int, seed: int, on_progress: Progress = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(crops uint8 N×S×S×3, teacher embeddings N×D, photo index N)``; bad photos are skipped.

    The first view of every photo is the teacher's own centre crop, the rest are random crops.
    """
    rng = random.Random(seed)
    pre = teacher.spec.preprocess
    size, short = pre.input_size, draft_size(pre)
    crops: list[np.ndarray] = []
    owner: list[int] = []
    for i, path in enumerate(photos):
        try:
            image = teacher.load(path)
        except ImageError as exc:
            log.info("skipped %s: %s", path, exc)
            if on_progress:
                on_progress(1)
            continue
        crops.append(np.asarray(resize_and_crop(image, pre), np.uint8))
        owner.append(i)
        for _ in range(views - 1):
            crops.append(np.asarray(_random_view(image, size, short, rng), np.uint8))
            owner.append(i)
        if on_progress:
            on_progress(1)
    if not crops:
        raise ValueError("no usable photos to distil on")
    arr = np.stack(crops)
    # The crops are the teacher's input already: normalised only, never re-cropped, so teacher and
    # student see exactly the same field of view.
    targets = np.concatenate([teacher.run(normalise(arr[j : j + 32], pre)).vectors for j in range(0, len(arr), 32)])
    return arr, targets, np.asarray(owner)


class _Normalise(torch.nn.Module):
    """uint8 NHWC crops at the teacher's size → the student's normalised NCHW input."""

    def __init__(self, size: int, mean, std) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)
        return (x - self.mean) / self.std


def _embed(student: torch.nn.Module, norm: _Normalise, crops: np.ndarray, batch: int = 64) -> torch.Tensor:
    student.eval()
    out = []
    with torch.inference_mode():
        for j in range(0, len(crops), batch):
            out.append(F.normalize(_features(student, norm(torch.from_numpy(crops[j : j + batch]))), dim=1))
    return torch.cat(out)


def _features(student: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = student(x)
    return (out[0] if isinstance(out, tuple) else out).flatten(1)


def _mean_cosine(student, norm, crops, targets) -> float:
    if len(crops) == 0:
        return float("nan")
    return float((_embed(student, norm, crops) * torch.from_numpy(targets)).sum(1).mean())


def train_student(
    student: torch.nn.Module,
    norm: _Normalise,
    crops: np.ndarray,
    targets: np.ndarray,
    cfg: DistillConfig,
    on_step: Progress = None,
) -> None:
    """Minimise 1 − cos(student(view), teacher(view)) with AdamW and a cosine learning-rate decay."""
    torch.manual_seed(cfg.seed)
    lr = cfg.lr or (5e-4 if cfg.prune_ratio > 0 else 1e-4)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=1e-5)
    steps = cfg.epochs * max(1, len(crops) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    target = torch.from_numpy(targets)
    rng = np.random.default_rng(cfg.seed)
    done = 0
    # Batch norm stays frozen (eval mode): its batch statistics over 32 photos are far from the
    # ones the network was trained with, and training through them undoes the teacher's features.
    student.eval()
    for _ in range(cfg.epochs):
        order = rng.permutation(len(crops))
        for j in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):
            if done >= steps:
                break
            idx = order[j : j + cfg.batch_size]
            emb = F.normalize(_features(student, norm(torch.from_numpy(crops[idx]))), dim=1)
            loss = (1.0 - (emb * target[idx]).sum(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if on_step:
                on_step(len(idx))


def recalibrate_batch_norm(student: torch.nn.Module, norm: _Normalise, crops: np.ndarray, batch: int = 32) -> None:
    """Re-estimate batch-norm statistics on the photos: pruning changes every layer's input.

    Only after pruning: on an intact network the statistics it was trained with serve better than
    ones measured on a few thousand photos (measured: cosine to the teacher 0.88 → 0.55).
    """
    norms = [m for m in student.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over every batch
    student.train()
    with torch.inference_mode():
        for j in range(0, len(crops), batch):
            student(norm(torch.from_numpy(crops[j : j + batch])))
    student.eval()


def distill(
    teacher_dir: Path,
    out_dir: Path,
    photos: Sequence[Path],
    cfg: DistillConfig,
    on_views: Progress = None,
    on_train: Progress = None,
) -> tuple[ModelSpec, DistillReport]:
    """Build a student of the model in ``teacher_dir`` into ``out_dir`` and measure it.

    ``on_views`` advances once per photo while the teacher embeds the views, ``on_train`` by the
    number of views per training step.
    """
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    teacher = Encoder(teacher_dir, providers="cpu")
    base = torch_module(teacher.spec)
    if base is None:
        raise ValueError(f"no torch recipe for {teacher.spec.name!r}: only models built by name can be distilled")
    if len(photos) < 32:
        raise ValueError(f"distillation needs at least 32 photos, got {len(photos)}")
    rng = random.Random(cfg.seed)
    order = list(range(len(photos)))
    rng.shuffle(order)
    n_hold = max(1, int(cfg.holdout * len(photos)))
    hold, train = [photos[i] for i in order[:n_hold]], [photos[i] for i in order[n_hold:]]
    crops, targets, _ = teacher_views(teacher, train, cfg.views, cfg.seed, on_views)
    h_crops, h_targets, _ = teacher_views(teacher, hold, 1, cfg.seed + 1, on_views)

    pre = teacher.spec.preprocess
    size = cfg.input_size or pre.input_size
    student = EncoderWrapper(copy.deepcopy(base.features))  # the embedding only: no ImageNet head
    if cfg.prune_ratio > 0:
        from embedder.export.prune import prune_channels

        prune_channels(student, cfg.prune_ratio, torch.zeros(1, 3, size, size))
    norm = _Normalise(size, pre.mean, pre.std)
    if cfg.prune_ratio > 0:
        recalibrate_batch_norm(student, norm, crops)
    before = _mean_cosine(student, norm, h_crops, h_targets)
    train_student(student, norm, crops, targets, cfg, on_train)
    after = _mean_cosine(student, norm, h_crops, h_targets)
    report = DistillReport(
        photos=len(photos), train_views=len(crops), holdout_views=len(h_crops), cosine_before=before,
        cosine_after=after, epochs=cfg.epochs, prune_ratio=cfg.prune_ratio,
        params_teacher=sum(p.numel() for p in base.features.parameters()),
        params_student=sum(p.numel() for p in student.parameters()),
    )
    spec = ModelSpec(
        name=Path(out_dir).name,
        source=f"{teacher.spec.source}; distilled student ({_describe(cfg, size)})",
        embedding_dim=teacher.dim,
        logits_output=None,
        preprocess=pre.model_copy(update={"input_size": size}),
        extra={"distilled_from": teacher.spec.name, "distill": {**asdict(cfg), "input_size": size}, "report": asdict(report)},
    )
    return export_encoder(student, spec, Path(out_dir)), report


def _describe(cfg: DistillConfig, size: int) -> str:
    bits = [f"{size}px input"]
    if cfg.prune_ratio:
        bits.append(f"{round(100 * cfg.prune_ratio)}% channels pruned")
    return ", ".join(bits) + f", {cfg.epochs} epochs"
