"""KD-SVD: Self-supervised Knowledge Distillation using Singular Value Decomposition (Lee et al., ECCV 2018).

Reference: HobbitLong/RepDistiller ``distiller_zoo/KDSVD.py`` (``KDSVD.forward``, ``svd``, ``align_rsv``; ``k`` 1),
wired in ``helper/loops.py`` on the stage maps ``feat[1:-1]``, the terms summed. It decomposes each map as the
``(H*W) x C`` matrix of the original TensorFlow code (sseung0703/SSKD_SVD), so its right singular vectors live
in channel space. mdistiller's ``mdistiller/distillers/KDSVD.py`` reshapes to ``(C*H) x W`` instead (vectors over
the image columns); we follow RepDistiller, the original's decomposition. Weight: ``-b 1`` (mdistiller
``mdistiller/engine/cfg.py``, ``CFG.KDSVD.LOSS.FEAT_WEIGHT``, CE weight 1, no KD: RepDistiller gives no KD-SVD
command or table row)."""

import torch
import torch.nn.functional as F

from topkd_io import TopKDError

from ..registry import register
from ..teacher_student import TeacherStudent, fresh_twin, stage_maps

K = 1  # singular vectors of the teacher kept (the student keeps K + 3); RepDistiller's and mdistiller's default


def _finite(x: torch.Tensor) -> torch.Tensor:
    """Non-finite entries -> 0 (the reference's ``removenan``)."""
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def right_singular(feat: torch.Tensor, n: int):
    """Map ``[B, C, H, W]`` -> ``(s [B, n], v [B, C, n])``: the first ``n`` singular values (L2-normalised
    together) and right singular vectors (each L2-normalised) of the ``[B, H*W, C]`` matrix of positions x
    channels, decomposed in at least float32."""
    x = feat.flatten(2).transpose(1, 2)
    x = x.to(torch.promote_types(x.dtype, torch.float32))  # no SVD in half precision (--amp): as mdistiller
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    s, v = _finite(s), _finite(vh.transpose(1, 2))
    return F.normalize(s[:, :n], dim=1), F.normalize(v[:, :, :n], dim=1)


def align(v_s: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """``v_s [B, C, n_s]``, ``v_t [B, C, k]`` -> ``[B, C, k]``: for each teacher vector, the student vector of
    largest absolute cosine with it, signed to agree (every tie adds in, as in the reference)."""
    cosine = v_s.transpose(1, 2) @ v_t  # [B, n_s, k]
    best = cosine.abs() == cosine.abs().max(1, keepdim=True).values
    return v_s @ torch.where(best, cosine.sign(), torch.zeros_like(cosine))


def kdsvd_loss(maps_s, maps_t, k: int = K) -> torch.Tensor:
    """Stage maps (lists of ``[B, C_i, H_i, W_i]``, student and teacher of equal ``C_i``) -> scalar: for each
    stage, ``v`` = aligned singular vectors scaled by the teacher's normalised singular values; between each two
    consecutive stages the RBF ``exp(-(v_i[c] - v_{i-1}[c'])^2 / 8)`` over all channel pairs ``[B, C_i, C_{i-1},
    k]``; the squared student-teacher difference summed (non-finite entries dropped), divided by ``B``."""
    total, previous = maps_s[0].new_zeros(()), None
    for f_s, f_t in zip(maps_s, maps_t):
        s_t, v_t = right_singular(f_t, k)
        v_s = align(right_singular(f_s, k + 3)[1], v_t)
        v_s, v_t = v_s * s_t.unsqueeze(1), v_t * s_t.unsqueeze(1)
        if previous is not None:
            (p_s, p_t) = previous
            rbf_s = torch.exp(-(v_s.unsqueeze(2) - p_s.unsqueeze(1)).pow(2) / 8)
            rbf_t = torch.exp(-(v_t.unsqueeze(2) - p_t.unsqueeze(1)).pow(2) / 8)
            total = total + _finite((rbf_s - rbf_t.detach()).pow(2)).sum()
        previous = (v_s, v_t)
    return total / maps_s[0].shape[0]


@register("kdsvd")
class KDSVD(TeacherStudent):
    """``beta * kdsvd_loss(f_s[1:-1], f_t[1:-1])``: the stage maps of both networks must have equal channels
    stage by stage (the alignment compares singular vectors in channel space)."""

    term = "loss_kdsvd"
    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)
    defaults_source = "mdistiller mdistiller/engine/cfg.py (CFG.KDSVD: CE 1, FEAT_WEIGHT 1)"

    @classmethod
    def example(cls, student, teacher, batch):
        """The teacher: a freshly initialised twin of the student (KD-SVD needs equal widths stage by stage)."""
        return cls(student, fresh_twin(student)), batch

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        pairs = stage_maps(self, "kdsvd")
        if any(s[1] != t[1] for s, t in pairs):
            raise TopKDError("--distill kdsvd compares singular vectors over the channels, but the stage widths differ "
                             f"(student {[s[1] for s, _ in pairs]}, teacher {[t[1] for _, t in pairs]}): pick a "
                             "teacher with the student's stage widths, or another method")

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return kdsvd_loss(feats_s[1:-1], feats_t[1:-1])
