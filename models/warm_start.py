"""Warm start: copy a checkpoint's weights into a freshly built network (``--init_s PATH``).

Accepts our checkpoints (``{'model': ...}``), the official TopKD/RepDistiller ones (``{'model': ...}`` or
a bare state dict, ``module.`` prefixes allowed) and TGD's releases (``{'model_state_dict': ...}`` with
its own WideResNet key names, mapped by ``models.tgd_released``). Only the weights are taken: the
optimizer state, epoch and learning-rate schedule start fresh (the official TGD ``--student_checkpoint``
does the same).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from topkd_io import TopKDError, load_checkpoint

from .loading import check_finite_weights, model_state, state_dict_differences
from .tgd_released import is_tgd_state_dict, tgd_to_wrn_state_dict

__all__ = ["checkpoint_weights", "init_from_checkpoint"]


def checkpoint_weights(path: str) -> Dict[str, torch.Tensor]:
    """The network state dict stored in checkpoint ``path`` (any layout above), under our key names."""
    ckpt = load_checkpoint(path)
    if isinstance(ckpt.get("model_state_dict"), dict):
        ckpt = ckpt["model_state_dict"]
    try:
        sd = model_state(ckpt)
    except ValueError:
        raise TopKDError(f"checkpoint {path} holds no network weights (expected {{'model': ...}}, "
                         f"{{'model_state_dict': ...}} or a state dict)") from None
    check_finite_weights(sd, path, "--init_s")
    return tgd_to_wrn_state_dict(sd) if is_tgd_state_dict(sd) else sd


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
