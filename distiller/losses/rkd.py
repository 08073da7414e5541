"""Relational KD (Park et al. 2019): distance-wise and angle-wise smooth-L1 terms."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``[B, D]`` -> ``[B, B]`` Euclidean distances with a zero diagonal."""
    sq = e.pow(2).sum(1)
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * e @ e.t()).clamp(min=eps)
    d = d2.sqrt().clone()
    d[range(len(e)), range(len(e))] = 0
    return d


def _angles(e: torch.Tensor) -> torch.Tensor:
    """``[B, D]`` -> ``[B*B*B]`` cosines of the angle at j between (i - j) and (k - j)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


class RKDLoss(nn.Module):
    """``w_dist * RKD-D + w_angle * RKD-A`` on ``[B, D]`` embeddings (defaults 25 and 50)."""

    def __init__(self, w_dist: float = 25.0, w_angle: float = 50.0):
        super().__init__()
        self.w_dist, self.w_angle = w_dist, w_angle

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        s, t = f_s.flatten(1), f_t.flatten(1)
        with torch.no_grad():
            d_t = _pairwise_distances(t)
            d_t = d_t / d_t[d_t > 0].mean()
            a_t = _angles(t)
        d_s = _pairwise_distances(s)
        d_s = d_s / d_s[d_s > 0].mean()
        loss_d = F.smooth_l1_loss(d_s, d_t)
        loss_a = F.smooth_l1_loss(_angles(s), a_t)
        return self.w_dist * loss_d + self.w_angle * loss_a
