"""Probabilistic knowledge transfer (Passalis & Tefas 2018), cosine-similarity kernel."""
from __future__ import annotations

import torch
from torch import nn


def _conditional_probs(f: torch.Tensor, eps: float) -> torch.Tensor:
    """``[B, D]`` -> ``[B, B]``: cosine similarities mapped to [0, 1], each row divided by its sum."""
    f = f / (f.norm(dim=1, keepdim=True) + eps)
    f = torch.nan_to_num(f)
    sim = (f @ f.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


class PKTLoss(nn.Module):
    """Mean over the ``[B, B]`` entries of ``p_t * log((p_t + eps) / (p_s + eps))``."""

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = eps

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        p_s = _conditional_probs(f_s.flatten(1), self.eps)
        p_t = _conditional_probs(f_t.flatten(1), self.eps)
        return torch.mean(p_t * torch.log((p_t + self.eps) / (p_s + self.eps)))
