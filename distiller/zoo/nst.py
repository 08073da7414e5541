"""NST: Neuron Selectivity Transfer (Huang & Wang, 2017), as RepDistiller runs it.

Reference: HobbitLong/RepDistiller ``distiller_zoo/NST.py`` (``NSTLoss.nst_loss`` with ``full_loss`` and
``poly_kernel``), wired in ``helper/loops.py`` on the stage maps ``feat[1:-1]``, the per-stage terms summed.
Weight: ``-a 0 -b 50`` (RepDistiller ``scripts/run_cifar_distill.sh``, the NST line; mdistiller's
``CFG.NST.LOSS.FEAT_WEIGHT`` is 50 too)."""
import torch
import torch.nn.functional as F

from ..losses import same_size
from ..registry import register
from ..teacher_student import TeacherStudent, stage_maps


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
