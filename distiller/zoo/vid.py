"""VID: Variational Information Distillation (Ahn et al., CVPR 2019), as RepDistiller runs it.

Reference: HobbitLong/RepDistiller ``distiller_zoo/VID.py`` (``VIDLoss``: the regressor, the softplus-inverse
initialisation of ``log_scale`` with ``init_pred_var`` 5 and ``eps`` 1e-5, the loss), wired in ``train_student.py``
(one ``VIDLoss(s, t, t)`` per stage map ``feat[1:-1]``, trained with the student) and ``helper/loops.py`` (the
per-stage terms summed). Weight: ``-a 0 -b 1`` (RepDistiller ``scripts/run_cifar_distill.sh``, the VID line)."""
import math

import torch
from torch import nn
import torch.nn.functional as F

from ..registry import register
from ..losses import same_size
from ..teacher_student import TeacherStudent, stage_maps

INIT_PRED_VAR = 5.0  # RepDistiller's VIDLoss defaults (mdistiller's CFG.VID too)
EPS = 1e-5


class VIDLayer(nn.Module):
    """One stage: the mean ``mu(f_s)``, three bias-free 1x1 convolutions ``C_s -> C_t -> C_t -> C_t`` with ReLUs
    between, and the variance ``softplus(log_scale) + eps`` ``[C_t]``, ``log_scale`` initialised to
    ``softplus^-1(init_pred_var - eps)`` so the variance starts at ``init_pred_var``."""

    def __init__(self, c_s: int, c_t: int, init_pred_var: float = INIT_PRED_VAR, eps: float = EPS):
        super().__init__()
        self.regressor = nn.Sequential(
            nn.Conv2d(c_s, c_t, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c_t, c_t, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c_t, c_t, 1, bias=False))
        self.log_scale = nn.Parameter(torch.full((c_t,), math.log(math.expm1(init_pred_var - eps))))
        self.eps = eps

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """Maps ``[B, C_s, H, W]``, ``[B, C_t, H', W']`` (the larger pooled to the smaller) -> the Gaussian
        negative log-likelihood of ``f_t`` given ``f_s`` without its constant, averaged over every element:
        ``mean(0.5 * ((mu - f_t)^2 / var + log var))``."""
        f_s, f_t = same_size(f_s, f_t)
        var = (F.softplus(self.log_scale) + self.eps).view(1, -1, 1, 1)
        return (0.5 * ((self.regressor(f_s) - f_t).pow(2) / var + var.log())).mean()


@register("vid")
class VID(TeacherStudent):
    """``beta * sum over stages VIDLayer(f_s, f_t)`` on the stage maps ``feats[1:-1]``; the layers train
    jointly with the student (RepDistiller has no pre-training stage for VID)."""

    term = "loss_vid"
    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)
    defaults_source = "RepDistiller scripts/run_cifar_distill.sh (VID: -a 0 -b 1)"

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.vid = nn.ModuleList(VIDLayer(s[1], t[1]) for s, t in stage_maps(self, "vid"))

    def method_modules(self):
        return (self.vid,)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return sum(layer(f_s, f_t) for layer, f_s, f_t in zip(self.vid, feats_s[1:-1], feats_t[1:-1]))
