"""Attention transfer (Zagoruyko & Komodakis 2017), RepDistiller's form with p = 2."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def attention_map(f: torch.Tensor, p: int = 2) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, H*W]``: channel mean of ``|f|**p`` (RepDistiller: ``f**p``), L2-normalized."""
    return F.normalize(f.pow(p).mean(1).flatten(1), dim=1)


class AttentionLoss(nn.Module):
    """Sum over layer pairs of ``mean((at(f_s) - at(f_t))**2)``; larger maps are pooled to the smaller size."""

    def __init__(self, p: int = 2):
        super().__init__()
        self.p = p

    def pair(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        hs, ht = f_s.shape[2], f_t.shape[2]
        if hs > ht:
            f_s = F.adaptive_avg_pool2d(f_s, f_t.shape[2:])
        elif ht > hs:
            f_t = F.adaptive_avg_pool2d(f_t, f_s.shape[2:])
        return (attention_map(f_s, self.p) - attention_map(f_t, self.p)).pow(2).mean()

    def forward(self, feats_s: Sequence[torch.Tensor], feats_t: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(self.pair(s, t) for s, t in zip(feats_s, feats_t))
