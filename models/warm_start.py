"""Warm start (``--init_s PATH``): a checkpoint's weights (ours, the official TopKD/RepDistiller ones, TGD's
releases; `models.loading`) copied into a freshly built network. Only the weights: the optimizer, epoch and
learning-rate schedule start fresh (as the official TGD ``--student_checkpoint``).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from topkd_io import TopKDError

from .loading import check_finite_weights, read_weights, state_dict_differences

__all__ = ["checkpoint_weights", "init_from_checkpoint"]


def checkpoint_weights(path: str) -> Dict[str, torch.Tensor]:
    """The network state dict stored in checkpoint ``path``, under our key names."""
    sd = read_weights(path)[1]
    check_finite_weights(sd, path, "--init_s")
    return sd


def init_from_checkpoint(model: nn.Module, path: Optional[str]) -> nn.Module:
    """Load the weights of checkpoint ``path`` into ``model`` (strictly: every key and shape must match);
    ``path`` None or empty does nothing. Raises FileNotFoundError / ValueError with a one-line reason."""
    if not path:
        return model
    sd = checkpoint_weights(str(path))
    diffs = state_dict_differences(model.state_dict(), sd)
    if diffs:
        raise TopKDError(f"--init_s {path} does not fit the {type(model).__name__} being trained "
                         f"(another architecture or class count?): {'; '.join(diffs)}")
    model.load_state_dict(sd, strict=True)
    return model
