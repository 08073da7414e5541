"""Similarity-preserving KD (Tung & Mori 2019)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SimilarityLoss(nn.Module):
    """``||norm(G_s) - norm(G_t)||_F**2 / B**2`` with ``G = f f^T`` (``[B, B]``) and rows L2-normalized.

    f_s, f_t: any ``[B, ...]`` (flattened per sample).
    """

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        b = f_s.shape[0]
        f_s, f_t = f_s.flatten(1), f_t.flatten(1)
        g_s = F.normalize(f_s @ f_s.t(), dim=1)
        g_t = F.normalize(f_t @ f_t.t(), dim=1)
        return (g_s - g_t).pow(2).sum() / (b * b)
