"""CC: Correlation Congruence (Peng et al., ICCV 2019), as RepDistiller runs it.

Reference: HobbitLong/RepDistiller ``distiller_zoo/CC.py`` (the loss, ``Correlation.forward``), ``models/util.py``
(``LinearEmbed``), ``train_student.py`` (one linear embedding per network on ``feat[-1]``, both trained) and
``helper/loops.py`` (``loss_kd = criterion_kd(embed_s(feat_s[-1]), embed_t(feat_t[-1]))``). Weight: ``-a 0 -b 0.02``
(RepDistiller ``scripts/run_cifar_distill.sh``, the CC line; its README's CC row)."""
import math

import torch
from torch import nn

from ..crd import FEAT_DIM
from ..registry import register
from ..teacher_student import TeacherStudent


def cc_loss(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """``e_s``, ``e_t`` ``[B, D]`` -> scalar: with ``d = |e_s - e_t|``, the mean over the ``B - 1`` neighbouring
    pairs of the batch of ``<d[i], d[i + 1]>`` (RepDistiller's form of the correlation congruence)."""
    d = (e_s - e_t).abs()
    return (d[:-1] * d[1:]).sum(1).mean()


@register("cc", "correlation")
class CC(TeacherStudent):
    """``beta * cc_loss(embed_s(f_s[-1]), embed_t(f_t[-1]))``: ``embed_*`` a linear map of the flattened
    embedding ``[B, C]`` to ``[B, feat_dim]`` (with bias, no normalisation); both trained with the student."""

    term = "loss_cc"
    options = (FEAT_DIM,)
    defaults = dict(gamma=1.0, alpha=0.0, beta=0.02)
    defaults_source = "RepDistiller scripts/run_cifar_distill.sh (CC: -a 0 -b 0.02)"

    def __init__(self, student, teacher=None, feat_dim: int = 128, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.embed_s = nn.Linear(math.prod(self.feat_shapes_s[-1][1:]), int(feat_dim))
        self.embed_t = nn.Linear(math.prod(self.feat_shapes_t[-1][1:]), int(feat_dim))

    def method_modules(self):
        return (self.embed_s, self.embed_t)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return cc_loss(self.embed_s(feats_s[-1].flatten(1)), self.embed_t(feats_t[-1].flatten(1)))
