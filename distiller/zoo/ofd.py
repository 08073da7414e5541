"""OFD, "A Comprehensive Overhaul of Feature Distillation" (Heo et al., ICCV 2019).

Follows mdistiller's ``mdistiller/distillers/OFD.py`` (``feat_loss``, ``ConnectorConvBN``, ``init_ofd_modules``,
``ofd_loss``), itself the port of clovaai/overhaul-distillation ``CIFAR-100/distiller.py``. Table weight: beta
0.001 (mdistiller ``engine/cfg.py`` ``OFD.LOSS.FEAT_WEIGHT``, used by ``configs/cifar100/ofd.yaml``; the original
divides the summed loss by batch and by 1000), CE weight 1, 1x1 connectors.

The maps are the stage maps ``feats[1:-1]`` of both networks before their last ReLU (``preact``), the last
``n`` of each when the depths differ (n = the smaller count). The student's map ``i`` goes through a connector
(1x1 conv, BN) to the teacher's width; the teacher's is average-pooled to the student's size. The term is
``sum_i d(connector_i(s_i), t_i, m_i) / 2^(n-1-i)`` with the partial L2
``d = sum_{C,H,W} mean_B (s - max(t, m))^2 [s > max(t, m) or t > 0]`` and the margin ``m`` per channel: the mean
of the teacher's pre-ReLU value below zero, from the BN before its ReLU (`margin_of`)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from topkd_io import TopKDError

from ..registry import register
from ..teacher_student import TeacherStudent


def margin_of(bn: nn.BatchNorm2d) -> torch.Tensor:
    """``[C]``: ``E[x | x < 0]`` for ``x ~ N(bias, weight^2)`` per channel (the BN's shift and |scale|), or
    ``-3 |weight|`` where ``P(x < 0) <= 0.001``."""
    std, mean = bn.weight.detach().double().abs(), bn.bias.detach().double()
    below = torch.special.ndtr(-mean / std)
    truncated = mean - std * torch.exp(-(mean / std) ** 2 / 2) / math.sqrt(2 * math.pi) / below
    return torch.where(below > 0.001, truncated, -3 * std).float()


def partial_l2(source: torch.Tensor, target: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """``source``, ``target`` ``[B, C, H, W]``, ``margin`` ``[1, C, 1, 1]`` (negative) -> scalar: squared distance to
    ``max(target, margin)`` where the source exceeds it or the target is positive, summed, divided by B."""
    target = torch.maximum(target, margin)
    keep = (source > target) | (target > 0)
    return ((source - target) ** 2 * keep).sum() / source.shape[0]


def connector(c_in: int, c_out: int) -> nn.Sequential:
    """1x1 conv (no bias; weights from N(0, 2 / c_out)) then BN (1, 0), as the reference initialises it."""
    conv = nn.Conv2d(c_in, c_out, 1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / c_out))
    return nn.Sequential(conv, nn.BatchNorm2d(c_out))


@register("ofd", "overhaul")
class OFD(TeacherStudent):
    """``gamma * CE + beta * OFD`` (beta 0.001); see the module docstring."""

    term = "loss_ofd"
    preact = ("student", "teacher")
    defaults = dict(gamma=1.0, alpha=0.0, beta=0.001)
    defaults_source = "mdistiller engine/cfg.py OFD.LOSS (CE 1, FEAT 0.001)"

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        for who, net in (("student", student), ("teacher", teacher)):
            if not hasattr(net, "preact_points"):
                raise TopKDError(f"--distill ofd needs pre-ReLU features, which the {who} "
                                 f"({type(net).__name__}) cannot give; pick a registered architecture")
        maps_s, maps_t = self.feat_shapes_s[1:-1], self.feat_shapes_t[1:-1]
        self.n = min(len(maps_s), len(maps_t))
        bns = [bn for _, bn in teacher.preact_points()[1:]][-self.n:]
        if not self.n or any(bn is None for bn in bns):
            raise TopKDError(f"--distill ofd reads the BN before each stage's ReLU of the teacher, and the teacher "
                             f"({type(teacher).__name__}) has none there; pick a ResNet, WRN, VGG or MobileNet teacher")
        self.connectors = nn.ModuleList(connector(s[1], t[1]) for s, t in zip(maps_s[-self.n:], maps_t[-self.n:]))
        for i, bn in enumerate(bns):  # derived from the frozen teacher: not part of the checkpoint
            self.register_buffer(f"margin{i}", margin_of(bn).view(1, -1, 1, 1), persistent=False)

    def method_modules(self):
        return (self.connectors,)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        n, total = self.n, 0.0
        for i, (conn, s, t) in enumerate(zip(self.connectors, feats_s[-1 - n:-1], feats_t[-1 - n:-1])):
            s = conn(s)
            t = F.adaptive_avg_pool2d(t, s.shape[-2:])
            total = total + partial_l2(s, t, getattr(self, f"margin{i}")) / 2 ** (n - 1 - i)
        return total
