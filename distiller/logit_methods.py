"""Logit-based methods: Hinton KD (``kd``) and Decoupled KD (``dkd``)."""
from __future__ import annotations

from .losses import DKDLoss
from .options import Option
from .registry import register
from .teacher_student import TeacherStudent


@register("kd")
class KD(TeacherStudent):
    """``gamma * CE + alpha * KL(p_t || p_s) T^2``. RepDistiller's KD table passes ``-r 0.1 -a 0.9``, TopKD's
    resnet56 -> resnet20 setting ``-r 1 -a 2``."""

    defaults = dict(gamma=1.0, alpha=0.9, beta=0.0)
    defaults_source = "gamma: -r default of the official TopKD/RepDistiller parsers; alpha: RepDistiller's kd command"


@register("dkd")
class DKD(TeacherStudent):
    """``gamma * CE + beta * warmup * (dkd_alpha * TCKD + dkd_beta * NCKD)`` at temperature ``kd_T``, warm-up
    ``min(epoch / dkd_warmup, 1)`` (1 before the first epoch)."""

    term = "loss_dkd"
    options = (
        Option("dkd_alpha", 1.0, "DKD target-class weight", source="DKD paper, CIFAR", low=0.0),
        Option("dkd_beta", 8.0, "DKD non-target-class weight", source="DKD paper, CIFAR", low=0.0),
        Option("dkd_warmup", 20, "DKD linear warm-up epochs", source="DKD paper", low=0),
    )
    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)
    defaults_source = "DKD paper (CIFAR)"

    def __init__(self, student, teacher=None, kd_T: float = 4.0, dkd_alpha: float = 1.0, dkd_beta: float = 8.0,
                 dkd_warmup: int = 20, **kwargs):
        super().__init__(student, teacher, kd_T=kd_T, **kwargs)
        self.dkd = DKDLoss(dkd_alpha, dkd_beta, kd_T, dkd_warmup)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.dkd(logit_s, logit_t, target, epoch=self.epoch)
