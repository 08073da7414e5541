"""FSP: flow of solution procedure (Yim et al., CVPR 2017).

Follows HobbitLong/RepDistiller: distiller_zoo/FSP.py (lines 8-48), helper/pretrain.py (the stage, lines 11-94)
and train_student.py (lines 254-262: the stage trains the student's feature layers on the FSP loss of
``feats[:-1]``; the main stage adds nothing to CE and KD, helper/loops.py lines 174-176). Table weights:
scripts/run_cifar_distill.sh ``--distill fsp -a 0 -b 50``, where ``-b`` weighs a main-stage term of 0; here
the method has no main-stage term (``-b`` unused)."""
from typing import List, Sequence

import torch
import torch.nn.functional as F

from topkd_io import TopKDError

from ..registry import register
from ..teacher_student import fresh_twin
from .pretrain import Pretrained


def fsp_matrices(maps: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """``[B, C_i, C_{i+1}]`` for each pair of consecutive maps ``[B, C, H, W]``: the mean over positions of the
    products of their channels, the larger map average-pooled to the smaller's size first."""
    out = []
    for low, high in zip(maps[:-1], maps[1:]):
        size = min(low.shape[2], high.shape[2])
        low, high = F.adaptive_avg_pool2d(low, size), F.adaptive_avg_pool2d(high, size)
        out.append(torch.einsum("bip,bjp->bij", low.flatten(2), high.flatten(2)) / low[0, 0].numel())
    return out


@register("fsp")
class FSP(Pretrained):
    """Pre-training: ``sum_i mean((G_s,i - G_t,i)^2)`` over the FSP matrices of ``feats[:-1]``, over the student's
    feature layers at the main learning rate; then ``gamma * CE + alpha * KD``. The maps must have equal channels."""

    defaults = dict(gamma=1.0, alpha=0.0, beta=0.0)
    defaults_source = "RepDistiller scripts/run_cifar_distill.sh (fsp: -a 0; its -b weighs 0)"

    @classmethod
    def example(cls, student, teacher, batch):
        """The teacher: a freshly initialised twin of the student (FSP needs equal channels)."""
        return cls(student, fresh_twin(student)), batch

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        chans_s = [s[1] for s in self.feat_shapes_s[:-1]]
        chans_t = [t[1] for t in self.feat_shapes_t[:-1]]
        if chans_s != chans_t:
            raise TopKDError(f"FSP compares maps of equal channels, but the student's are {chans_s} and the "
                             f"teacher's {chans_t}: pick a teacher and student of equal widths")

    def pretrain_parameters(self):
        return self.student_body()

    def pretrain_loss(self, feats_s, feats_t):
        return sum((s - t).pow(2).mean() for s, t in zip(fsp_matrices(feats_s[:-1]), fsp_matrices(feats_t[:-1])))
