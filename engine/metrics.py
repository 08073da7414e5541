"""Accuracy and running means."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Tuple[int, ...]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the class count)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # [B, kmax]
    hits = top.eq(target.view(-1, 1))
    return tuple(int(hits[:, :min(k, kmax)].any(dim=1).sum().item()) for k in ks)


class RunningSums:
    """Sums of named quantities weighted by sample counts; `means()` divides by the count."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.count = 0

    def add(self, values: Dict[str, float], n: int) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n
        self.count += n

    def means(self) -> Dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}
