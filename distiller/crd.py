"""Contrastive representation distillation (``crd``) on the embeddings (FC inputs)."""
from __future__ import annotations

import math

from .losses import CRDLoss
from .registry import register
from .teacher_student import TeacherStudent


@register("crd")
class CRD(TeacherStudent):
    """``beta * CRD(f_s[-1], f_t[-1], index)``; beta 0.8, feat_dim 128, nce_k 16384, nce_t 0.07, nce_m 0.5.

    ``num_data``: size of the training set's index space (memory-bank rows); the batch must carry
    ``index`` ``[B]``. ``train_student.py`` wraps the training set in ``datasets.contrast.ContrastSample``
    (``samples_negatives``), so batches carry ``contrast_idx`` ``[B, nce_k+1]``: negatives from other
    classes, as RepDistiller. Without it, negatives are uniform over ``range(num_data)``.
    """

    term = "loss_crd"
    samples_negatives = True  # the stage script should hand it class-aware negatives from the loader
    defaults = dict(gamma=1.0, alpha=0.0, beta=0.8)

    def __init__(self, student, teacher=None, num_data: int = 0, feat_dim: int = 128, nce_k: int = 16384,
                 nce_t: float = 0.07, nce_m: float = 0.5, **kwargs):
        super().__init__(student, teacher, **kwargs)
        if num_data <= 0:
            raise ValueError("crd needs num_data = the training-set size (the memory bank has one row per image)")
        s_dim = math.prod(self.feat_shapes_s[-1][1:])
        t_dim = math.prod(self.feat_shapes_t[-1][1:])
        self.crd = CRDLoss(s_dim, t_dim, num_data, feat_dim, nce_k, nce_t, nce_m)

    def method_modules(self):
        return (self.crd.embed_s, self.crd.embed_t)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, index=None, contrast_idx=None, **batch):
        return self.crd(feats_s[-1], feats_t[-1], index, contrast_idx)
