"""FitNet hints: a learnable regressor maps the student's feature to the teacher's shape, then MSE."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Regressor(nn.Module):
    """Maps a student feature to the teacher feature's shape.

    Maps ``[B, Cs, Hs, Ws]`` -> ``[B, Ct, Ht, Wt]`` with a 3x3 conv + BN + ReLU (RepDistiller's ConvReg),
    resizing spatially by adaptive average pooling (shrink) or bilinear interpolation (grow). Vectors
    ``[B, Cs]`` -> ``[B, Ct]`` through a linear layer.
    """

    def __init__(self, s_shape: Sequence[int], t_shape: Sequence[int]):
        super().__init__()
        if len(s_shape) != len(t_shape) or len(s_shape) not in (2, 4):
            raise ValueError(
                f"hint layers must both be vectors [B, C] or both maps [B, C, H, W]; got student "
                f"{tuple(s_shape)} and teacher {tuple(t_shape)}: pick matching --hint_layer"
            )
        self.out_hw = tuple(t_shape[2:])
        if len(s_shape) == 2:
            self.body = nn.Linear(s_shape[1], t_shape[1])
        else:
            self.body = nn.Sequential(
                nn.Conv2d(s_shape[1], t_shape[1], kernel_size=3, padding=1),
                nn.BatchNorm2d(t_shape[1]),
                nn.ReLU(inplace=True),
            )

    def forward(self, f_s: torch.Tensor) -> torch.Tensor:
        out = self.body(f_s)
        if out.dim() == 4 and tuple(out.shape[2:]) != self.out_hw:
            if out.shape[2] >= self.out_hw[0] and out.shape[3] >= self.out_hw[1]:
                out = F.adaptive_avg_pool2d(out, self.out_hw)
            else:
                out = F.interpolate(out, size=self.out_hw, mode="bilinear", align_corners=False)
        return out


class HintLoss(nn.Module):
    """Mean squared error between the regressed student feature and the teacher feature."""

    def forward(self, f_s_regressed: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(f_s_regressed, f_t)
