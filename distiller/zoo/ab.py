"""AB: knowledge transfer via distillation of activation boundaries (Heo et al., AAAI 2019).

Follows HobbitLong/RepDistiller: distiller_zoo/AB.py (the loss, lines 7-29), models/util.py ``Connector``
(lines 65-90, with ``ConvReg(use_relu=False)``), helper/pretrain.py (the stage, lines 11-94) and train_student.py
(lines 227-238: the stage trains the connectors and the student's feature layers; the main stage adds nothing
to CE and KD, helper/loops.py lines 171-173). Table weights: scripts/run_cifar_distill.sh ``--distill abound
-a 0 -b 1``, where ``-b`` weighs a main-stage term of 0; here the method has no main-stage term (``-b`` unused)."""
from typing import List, Sequence

import torch
from torch import nn

from ..losses import Regressor
from ..registry import register
from ..teacher_student import stage_maps
from .pretrain import Pretrained


class Connector(nn.Module):
    """One map per stage, student -> teacher shape: the identity where channels and height agree, else FitNet's
    regressor without its ReLU (convolution, then BatchNorm)."""

    def __init__(self, shapes_s: Sequence[Sequence[int]], shapes_t: Sequence[Sequence[int]]):
        super().__init__()
        self.maps = nn.ModuleList(nn.Identity() if (s[1], s[2]) == (t[1], t[2]) else Regressor(s, t)
                                  for s, t in zip(shapes_s, shapes_t))

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        return [m(f) if isinstance(m, nn.Identity) else m.bn(m.conv(f)) for m, f in zip(self.maps, feats)]


def ab_loss(maps_s: Sequence[torch.Tensor], maps_t: Sequence[torch.Tensor], margin: float = 1.0) -> torch.Tensor:
    """Sum over the ``n`` stages ``i`` of ``2^(i-n+1) * 3/1000 / B * sum(hinge_i)`` with the squared hinge
    ``(s + m)^2 [s > -m, t <= 0] + (s - m)^2 [s <= m, t > 0]`` (``s`` the connected student map, ``t`` the
    teacher's; ``[B, C, H, W]`` each)."""
    n, total = len(maps_s), 0.0
    for i, (s, t) in enumerate(zip(maps_s, maps_t)):
        hinge = ((s + margin) ** 2 * ((s > -margin) & (t <= 0)) + (s - margin) ** 2 * ((s <= margin) & (t > 0)))
        total = total + 2.0 ** (i - n + 1) * hinge.sum() / s.shape[0] / 1000 * 3
    return total


@register("ab", "abound")
class AB(Pretrained):
    """Pre-training: ``ab_loss(connector(f_s[1:-1]), f_t[1:-1])``, margin 1 (RepDistiller's ``ABLoss`` default),
    over the connectors and the student's feature layers at the main learning rate; then ``gamma * CE + alpha * KD``.
    The maps are both networks' stage maps before their last ReLU (``preact``, as RepDistiller's ``preact=True``)."""

    defaults = dict(gamma=1.0, alpha=0.0, beta=0.0)
    defaults_source = "RepDistiller scripts/run_cifar_distill.sh (abound: -a 0; its -b weighs 0)"
    margin = 1.0
    preact = ("student", "teacher")

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.connector = Connector(*zip(*stage_maps(self, "ab")))

    def pretrain_parameters(self):
        return [*self.connector.parameters(), *self.student_body()]

    def pretrain_loss(self, feats_s, feats_t):
        return ab_loss(self.connector(feats_s[1:-1]), feats_t[1:-1], self.margin)
