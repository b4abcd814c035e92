"""Structured channel pruning of a convolutional encoder (torch-pruning).

Whole channels are removed, so the pruned network is a smaller dense network that every
runtime speeds up (unlike unstructured sparsity, which CPUs mostly ignore). Channels are
ranked by the L2 norm of their weights across each dependency group (a depthwise conv and the
convs that feed it lose the same channels). The last convolution, which makes the embedding,
keeps its width, so the student's embedding stays comparable to the teacher's.
"""

from __future__ import annotations

import torch


def prune_channels(module: torch.nn.Module, ratio: float, example: torch.Tensor, round_to: int | None = None) -> torch.nn.Module:
    """Remove ``ratio`` of the prunable channels of ``module`` in place; returns it."""
    import torch_pruning as tp

    if not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be between 0 and 1, got {ratio}")
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("channel pruning needs a convolutional encoder")
    if any(isinstance(m, torch.nn.MultiheadAttention) for m in module.modules()):
        raise ValueError("channel pruning is for convolutional encoders, not transformers")
    ignored = [convs[-1]] + [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    module.eval()
    pruner = tp.pruner.MetaPruner(
        module, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        ignored_layers=ignored, round_to=round_to,
    )
    pruner.step()
    return module
