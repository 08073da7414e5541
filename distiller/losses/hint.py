"""FitNet hints: a learnable regressor maps the student's feature to the teacher's shape, then MSE."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Regressor(nn.Module):
    """FitNet's regressor: maps a student feature to the teacher feature's shape (RepDistiller's ``ConvReg``).

    Maps ``[B, Cs, Hs, Ws]`` -> ``[B, Ct, Ht, Wt]`` by one convolution chosen from the spatial sizes, then
    BatchNorm and ReLU:

    * ``Hs == 2 * Ht``: 3x3 conv, stride 2, padding 1;
    * ``2 * Hs == Ht``: 4x4 transposed conv, stride 2, padding 1;
    * otherwise ``Hs >= Ht``: a ``(1 + Hs - Ht) x (1 + Ws - Wt)`` conv without padding, i.e. 1x1 when the
      maps have the same size (the common case);
    * a student map smaller than the teacher's but not half of it: ValueError (as in RepDistiller).

    Parameter names ``conv.*`` / ``bn.*`` are RepDistiller's. Vectors ``[B, Cs]`` -> ``[B, Ct]`` (hints
    on pooled embeddings, which ConvReg does not cover) go through a linear layer (``linear.*``).
    """

    def __init__(self, s_shape: Sequence[int], t_shape: Sequence[int]):
        super().__init__()
        if len(s_shape) != len(t_shape) or len(s_shape) not in (2, 4):
            raise ValueError(
                f"hint layers must both be vectors [B, C] or both maps [B, C, H, W]; got student "
                f"{tuple(s_shape)} and teacher {tuple(t_shape)}: pick matching --hint_layer"
            )
        if len(s_shape) == 2:
            self.linear = nn.Linear(s_shape[1], t_shape[1])
            return
        (_, s_c, s_h, s_w), (_, t_c, t_h, t_w) = s_shape, t_shape
        if s_h == 2 * t_h:
            self.conv: nn.Module = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
        elif 2 * s_h == t_h:
            self.conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
        elif s_h >= t_h and s_w >= t_w:
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
        else:
            raise ValueError(f"FitNet cannot map a student map of {s_h}x{s_w} to a teacher map of {t_h}x{t_w} "
                             f"(the student's must be at least as large, or half); pick another --hint_layer")
        self.bn = nn.BatchNorm2d(t_c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, f_s: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "linear"):
            return self.linear(f_s)
        return self.relu(self.bn(self.conv(f_s)))


class HintLoss(nn.Module):
    """Mean squared error between the regressed student feature and the teacher feature."""

    def forward(self, f_s_regressed: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(f_s_regressed, f_t)
