"""Decoupled KD (Zhao et al. 2022): target-class (TCKD) and non-target-class (NCKD) terms."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dkd_loss(logit_s, logit_t, target, alpha: float = 1.0, beta: float = 8.0, T: float = 4.0) -> torch.Tensor:
    """``alpha * TCKD + beta * NCKD``; both KL sums x ``T**2`` / batch. logits ``[B, K]``, target ``[B]``."""
    b = logit_s.shape[0]
    gt = F.one_hot(target, logit_s.shape[1]).to(logit_s.dtype)
    p_s = F.softmax(logit_s / T, dim=1)
    p_t = F.softmax(logit_t / T, dim=1)
    # binary (target, rest) distributions
    bin_s = torch.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], dim=1)
    bin_t = torch.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(bin_s), bin_t, reduction="sum") * T * T / b
    # distributions over the non-target classes (target logit pushed to -inf-ish)
    log_q_s = F.log_softmax(logit_s / T - 1000.0 * gt, dim=1)
    q_t = F.softmax(logit_t / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="sum") * T * T / b
    return alpha * tckd + beta * nckd


class DKDLoss(nn.Module):
    """:func:`dkd_loss` scaled by the linear warmup ``min(epoch / warmup, 1)`` (epochs counted from 1)."""

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, T: float = 4.0, warmup: int = 20):
        super().__init__()
        self.alpha, self.beta, self.T, self.warmup = alpha, beta, T, warmup

    def warmup_factor(self, epoch) -> float:
        if epoch is None or self.warmup <= 0:
            return 1.0
        return min(float(epoch) / self.warmup, 1.0)

    def forward(self, logit_s, logit_t, target, epoch=None):
        return self.warmup_factor(epoch) * dkd_loss(logit_s, logit_t, target, self.alpha, self.beta, self.T)
