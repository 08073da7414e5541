"""Hinton's knowledge distillation term (RepDistiller's ``DistillKL``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(logit_s: torch.Tensor, logit_t: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """KL(p_t || p_s) at temperature ``T``, summed over classes and batch, times ``T**2`` / batch.

    logit_s, logit_t: ``[B, K]``. Returns a scalar.
    """
    # at least float32 (half/bfloat16 logits under autocast are upcast; float64 stays)
    logit_s, logit_t = (x.to(torch.promote_types(x.dtype, torch.float32)) for x in (logit_s, logit_t))
    log_p_s = F.log_softmax(logit_s / T, dim=1)
    p_t = F.softmax(logit_t / T, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T * T) / logit_s.shape[0]


class DistillKL(nn.Module):
    """Module form of :func:`kd_loss` with a fixed temperature."""

    def __init__(self, T: float = 4.0):
        super().__init__()
        if T <= 0:
            raise ValueError(f"KD temperature must be > 0, got {T}; pass --kd_T with a positive value")
        self.T = float(T)

    def forward(self, logit_s, logit_t):
        return kd_loss(logit_s, logit_t, self.T)
