"""NST: Neuron Selectivity Transfer (Huang & Wang, 2017), as RepDistiller runs it.

Reference: HobbitLong/RepDistiller ``distiller_zoo/NST.py`` (``NSTLoss.nst_loss`` with ``full_loss`` and
``poly_kernel``), wired in ``helper/loops.py`` on the stage maps ``feat[1:-1]``, the per-stage terms summed.
Weight: ``-a 0 -b 50`` (RepDistiller ``scripts/run_cifar_distill.sh``, the NST line; mdistiller's
``CFG.NST.LOSS.FEAT_WEIGHT`` is 50 too). The two helpers below are shared with VID and KD-SVD (same wiring)."""
from typing import List, Tuple

import torch
import torch.nn.functional as F

from topkd_io import TopKDError

from ..registry import register
from ..teacher_student import TeacherStudent


def stage_maps(method: TeacherStudent, name: str) -> List[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """``[(student shape, teacher shape)]`` of the stage maps ``feats[1:-1]`` paired one to one; refuses
    networks with different numbers of stages (RepDistiller's ``zip`` would silently drop the extra ones)."""
    maps_s, maps_t = method.feat_shapes_s[1:-1], method.feat_shapes_t[1:-1]
    if len(maps_s) != len(maps_t) or not maps_s or any(len(s) != 4 for s in maps_s + maps_t):
        raise TopKDError(f"--distill {name} pairs the stage maps one to one, but the student has {len(maps_s)} and "
                         f"the teacher {len(maps_t)}: pick networks with as many stages, or another method")
    return list(zip(maps_s, maps_t))


def same_size(f_s: torch.Tensor, f_t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Maps ``[B, C, H, W]`` -> the larger one average-pooled to the other's height (RepDistiller pools the
    larger of the two to ``(H, H)`` of the smaller)."""
    h_s, h_t = f_s.shape[2], f_t.shape[2]
    if h_s > h_t:
        f_s = F.adaptive_avg_pool2d(f_s, (h_t, h_t))
    elif h_s < h_t:
        f_t = F.adaptive_avg_pool2d(f_t, (h_s, h_s))
    return f_s, f_t


def nst_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD with the kernel ``k(a, b) = <a, b>^2`` between the channels of two maps ``[B, C, H, W]``,
    each channel's ``H*W`` responses L2-normalised: ``mean K_tt + mean K_ss - 2 mean K_st`` (means over batch and
    channel pairs; ``K_tt`` a constant)."""
    f_s, f_t = same_size(f_s, f_t)
    a = F.normalize(f_s.flatten(2), dim=2)  # [B, C_s, HW]
    b = F.normalize(f_t.flatten(2), dim=2)  # [B, C_t, HW]

    def kernel(x, y):
        return torch.bmm(x, y.transpose(1, 2)).pow(2).mean()

    return kernel(b, b).detach() + kernel(a, a) - 2 * kernel(a, b)


@register("nst")
class NST(TeacherStudent):
    """``beta * sum over stages nst_loss(f_s, f_t)`` on the stage maps ``feats[1:-1]``."""

    term = "loss_nst"
    defaults = dict(gamma=1.0, alpha=0.0, beta=50.0)
    defaults_source = "RepDistiller scripts/run_cifar_distill.sh (NST: -a 0 -b 50)"

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        stage_maps(self, "nst")

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return sum(nst_loss(f_s, f_t) for f_s, f_t in zip(feats_s[1:-1], feats_t[1:-1]))
