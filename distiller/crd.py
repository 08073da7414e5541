"""Contrastive representation distillation (``crd``) on the embeddings (FC inputs)."""
from __future__ import annotations

import logging
import math

import dataclasses

from datasets.contrast import ContrastSample, index_targets

from .losses import CRDLoss
from .options import Option
from .registry import register
from .teacher_student import TeacherStudent

log = logging.getLogger(__name__)


@register("crd")
class CRD(TeacherStudent):
    """``beta * CRD(f_s[-1], f_t[-1], index)``; beta 0.8, feat_dim 128, nce_k 16384, nce_t 0.07, nce_m 0.5.

    ``num_data``: size of the training set's index space (memory-bank rows); the batch must carry
    ``index`` ``[B]``. Built from the command line (`prepare`), the training set is wrapped in
    ``datasets.contrast.ContrastSample``, so batches carry ``contrast_idx`` ``[B, nce_k+1]``: negatives
    from other classes, as RepDistiller. Without it, negatives are uniform over ``range(num_data)``.
    """

    term = "loss_crd"
    batch_fields = ("index",)  # memory-bank rows; contrast_idx too when the data carries it
    options = (
        Option("feat_dim", 128, "CRD embedding width", source="CRD paper; RepDistiller", low=1),
        Option("nce_k", 16384, "CRD negatives per sample (more than the training set holds: clipped to its size, "
               "with a warning)", source="CRD paper; RepDistiller", low=1),
        Option("nce_t", 0.07, "CRD temperature", source="CRD paper; RepDistiller", low=0.0, low_open=True),
        Option("nce_m", 0.5, "CRD memory momentum", source="CRD paper; RepDistiller", low=0.0, high=1.0),
        Option("crd_mode", "exact", "CRD positive: the sample itself (exact) or a random sample of its class "
               "(relax)", flags=("--mode", "--crd_mode"), choices=("exact", "relax"), source="RepDistiller"),
    )
    defaults = dict(gamma=1.0, alpha=0.0, beta=0.8)

    @classmethod
    def prepare(cls, cfg, data):
        """Class-aware negatives drawn by the loader; the memory bank spans the training index space."""
        data, keywords = super().prepare(cfg, data)
        space = index_targets(data.train)[2]
        if cfg.nce_k > space:  # more negatives than images: each would repeat, at a cost growing with k
            log.warning(f"warning: --nce_k {cfg.nce_k} is more than the {space} training images (the memory bank's "
                        f"rows); clipped to --nce_k {space} (recorded in config.yaml)")
            cfg.nce_k = space
        data = dataclasses.replace(data, train=ContrastSample(data.train, cfg.nce_k, cfg.crd_mode),
                                   fields=ContrastSample.fields)
        return data, dict(keywords, num_data=data.train.index_space)

    @classmethod
    def example(cls, student, teacher, batch):
        """A memory bank of twice the batch's indices and 8 negatives per sample."""
        return cls(student, teacher, num_data=2 * (int(batch["index"].max()) + 1), nce_k=8), batch

    def __init__(self, student, teacher=None, num_data: int = 0, feat_dim: int = 128, nce_k: int = 16384,
                 nce_t: float = 0.07, nce_m: float = 0.5, crd_mode: str = "exact", **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.crd_mode = crd_mode  # used by `prepare` on the data side; kept for the record
        if num_data <= 0:
            raise ValueError("crd needs num_data = the training-set size (the memory bank has one row per image)")
        s_dim = math.prod(self.feat_shapes_s[-1][1:])
        t_dim = math.prod(self.feat_shapes_t[-1][1:])
        self.crd = CRDLoss(s_dim, t_dim, num_data, feat_dim, nce_k, nce_t, nce_m)

    def method_modules(self):
        return (self.crd.embed_s, self.crd.embed_t)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, index, contrast_idx=None, **batch):
        return self.crd(feats_s[-1], feats_t[-1], index, contrast_idx)
