"""Reading one layer of a model's ``feats`` list as per-sample vectors: the points of a point cloud.

Stage 2 (`pcd.sources`, the RipsNet's training clouds) and stage 4 (`distiller.topkd`, the clouds of the
topology term) both call `layer_embedding`, so the RipsNet sees the same distribution it was trained on.
"""
from __future__ import annotations

from typing import Sequence

import torch


def check_layer(index: int, n: int, flag: str = "--layer", who: str = "teacher") -> int:
    """Validate a (possibly negative) index into a feats list of ``n`` entries -> the index in ``[0, n)``.

    ValueError naming ``flag`` and the valid range otherwise.
    """
    if not -n <= index < n:
        raise ValueError(f"{flag} {index} is out of range: the {who} has {n} feature stages, use -1 (the FC "
                         f"input) or an index in [{-n}, {n - 1}]")
    return index % n


def layer_embedding(feats: Sequence[torch.Tensor], layer: int) -> torch.Tensor:
    """Entry ``layer`` of ``feats`` as ``[B, C]``: 4-D stage maps ``[B, C, H, W]`` are averaged over H, W
    (global average pooling); ``[B, C]`` is returned as is; other shapes are flattened per sample."""
    f = feats[layer]
    if f.dim() == 4:
        return f.mean(dim=(2, 3))
    return f if f.dim() == 2 else f.flatten(1)
