"""Plain cross-entropy training of one network (teachers, and the CE-only student baseline)."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Distiller
from .registry import register


@register("vanilla")
class Vanilla(Distiller):
    """``loss_ce = gamma * CE(student(image), target)``; no teacher."""

    def __init__(self, student, teacher=None, gamma: float = 1.0):
        super().__init__(student, None)
        self.gamma = gamma

    def forward_train(self, image, target, **batch):
        logits = self.student(image)
        return logits, {"loss_ce": self.gamma * F.cross_entropy(logits, target)}
