"""The Distiller contract shared by every method (teacher training included, as `Vanilla`).

`forward_train(image, target, **batch)` returns ``(student_logits [B, K], losses)`` where ``losses`` maps
a term name (``"loss_ce"``, ``"loss_kd"``, ...) to an already weighted scalar tensor; the trainer sums the
dict and logs every term. `forward_test(image)` returns the student's logits. The teacher, when there is
one, is frozen (``requires_grad=False``) and stays in eval mode whatever ``train()`` is called with.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

Losses = Dict[str, torch.Tensor]


class Distiller(nn.Module):
    """Base class: holds ``student`` (trained) and an optional frozen ``teacher``."""

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module] = None):
        super().__init__()
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            for p in teacher.parameters():
                p.requires_grad_(False)
            teacher.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def learnable_parameters(self) -> List[nn.Parameter]:
        """Everything the optimizer updates: the student plus extra modules (projectors, embeddings)."""
        params = list(self.student.parameters())
        for module in self.extra_modules():
            params.extend(module.parameters())
        return params

    def extra_modules(self) -> Iterable[nn.Module]:
        """Trainable modules beyond the student (override in methods that add projectors)."""
        return ()

    def forward_train(self, image: torch.Tensor, target: torch.Tensor, **batch) -> Tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    def loss_summary(self) -> str:
        """The loss as it will be computed, weights resolved (printed in the run header, kept in config.yaml)."""
        return "1.0*CE"

    def forward_test(self, image: torch.Tensor) -> torch.Tensor:
        return self.student(image)

    def forward(self, image, target=None, **batch):
        if self.training:
            return self.forward_train(image, target, **batch)
        return self.forward_test(image)
