"""Hinton's knowledge distillation term (RepDistiller's ``DistillKL``), with the divisor as an option."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# "batchmean": the KL summed over classes and batch, divided by the batch (Hinton, RepDistiller, TopKD);
# "mean": divided by batch x classes, the element-wise mean of TGD's code (a K-times smaller term).
KD_REDUCTIONS = ("batchmean", "mean")


def kd_loss(logit_s: torch.Tensor, logit_t: torch.Tensor, T: float = 4.0, reduction: str = "batchmean") -> torch.Tensor:
    """KL(p_t || p_s) at temperature ``T``, summed over classes and batch, times ``T**2``, divided by the
    batch (``reduction="batchmean"``) or by batch x classes (``"mean"``).

    logit_s, logit_t: ``[B, K]``. Returns a scalar (at least float32).
    """
    if reduction not in KD_REDUCTIONS:
        raise ValueError(f"KD reduction must be one of {', '.join(KD_REDUCTIONS)}, got {reduction!r}")
    # at least float32 (half/bfloat16 logits under autocast are upcast; float64 stays)
    logit_s, logit_t = (x.to(torch.promote_types(x.dtype, torch.float32)) for x in (logit_s, logit_t))
    log_p_s = F.log_softmax(logit_s / T, dim=1)
    p_t = F.softmax(logit_t / T, dim=1)
    divisor = logit_s.shape[0] if reduction == "batchmean" else logit_s.numel()
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T * T) / divisor


class DistillKL(nn.Module):
    """Module form of :func:`kd_loss` with a fixed temperature and reduction."""

    def __init__(self, T: float = 4.0, reduction: str = "batchmean"):
        super().__init__()
        if T <= 0:
            raise ValueError(f"KD temperature must be > 0, got {T}; pass --kd_T with a positive value")
        if reduction not in KD_REDUCTIONS:
            raise ValueError(f"KD reduction must be one of {', '.join(KD_REDUCTIONS)}, got {reduction!r}")
        self.T = float(T)
        self.reduction = reduction

    def forward(self, logit_s, logit_t):
        return kd_loss(logit_s, logit_t, self.T, self.reduction)
