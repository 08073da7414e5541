"""Contrastive representation distillation (``crd``) on the embeddings, and its class-aware negatives:
`ContrastSample` (RepDistiller's "instance sample") draws them in the data-loader workers with the item's keyed
word of ``STREAM_CONTRAST``, so they follow (seed, epoch, index), whatever the worker count or a resume."""
import dataclasses
import logging
import math
from typing import Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from datasets.keyed import STREAM_CONTRAST, item_word
from topkd_io import TopKDError

from .losses import CRDLoss
from .options import Option
from .registry import register
from .teacher_student import TeacherStudent

log = logging.getLogger(__name__)
CONTRAST_MODES = ("exact", "relax")
# RepDistiller's --feat_dim: the width of CRD's embeddings and of CC's (distiller/zoo/cc.py)
FEAT_DIM = Option("feat_dim", 128, "embedding width (CRD, CC)", source="CRD paper; RepDistiller", low=1)


@register("crd")
class CRD(TeacherStudent):
    """``beta * CRD(f_s[-1], f_t[-1], index)``. ``num_data``: the rows of the memory bank (the training index
    space). Negatives: the batch's ``contrast_idx`` ``[B, nce_k+1]`` (`prepare` wraps the training set in
    `ContrastSample`), else uniform over ``range(num_data)``."""

    term = "loss_crd"
    batch_fields = ("index",)
    options = (
        FEAT_DIM,
        Option("nce_k", 16384, "CRD negatives per sample (more than the training set holds: clipped to its size, "
               "with a warning)", source="CRD paper; RepDistiller", low=1),
        Option("nce_t", 0.07, "CRD temperature", source="CRD paper; RepDistiller", low=0.0, low_open=True),
        Option("nce_m", 0.5, "CRD memory momentum", source="CRD paper; RepDistiller", low=0.0, high=1.0),
        Option("crd_mode", "exact", "CRD positive: the sample itself (exact) or a random sample of its class "
               "(relax)", flags=("--mode", "--crd_mode"), choices=CONTRAST_MODES, source="RepDistiller"),
    )
    defaults = dict(gamma=1.0, alpha=0.0, beta=0.8)

    @classmethod
    def prepare(cls, cfg, data):
        """Class-aware negatives drawn by the loader; ``nce_k`` at most the training index space."""
        data, keywords = super().prepare(cfg, data)
        space = index_targets(data.train)[2]
        nce_k = min(cfg.nce_k, space)  # more negatives than images would repeat each, at a cost growing with k
        if nce_k < cfg.nce_k:
            log.warning(f"warning: --nce_k {cfg.nce_k} is more than the {space} training images (the memory bank's "
                        f"rows); clipped to --nce_k {space} (recorded in config.yaml)")
        data = dataclasses.replace(data, train=ContrastSample(data.train, nce_k, cfg.crd_mode),
                                   fields=ContrastSample.fields)
        return data, dict(keywords, num_data=space, nce_k=nce_k)

    @classmethod
    def example(cls, student, teacher, batch):
        """A memory bank of twice the batch's indices and 8 negatives per sample."""
        return cls(student, teacher, num_data=2 * (int(batch["index"].max()) + 1), nce_k=8), batch

    def __init__(self, student, teacher=None, num_data: int = 0, feat_dim: int = 128, nce_k: int = 16384,
                 nce_t: float = 0.07, nce_m: float = 0.5, crd_mode: str = "exact", **kwargs):
        super().__init__(student, teacher, **kwargs)
        if num_data <= 0:
            raise TopKDError("crd needs num_data = the training-set size (the memory bank has one row per image)")
        s_dim = math.prod(self.feat_shapes_s[-1][1:])
        t_dim = math.prod(self.feat_shapes_t[-1][1:])
        self.crd = CRDLoss(s_dim, t_dim, num_data, feat_dim, nce_k, nce_t, nce_m)

    def method_modules(self):
        return (self.crd.embed_s, self.crd.embed_t)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, index, contrast_idx=None, **batch):
        return self.crd(feats_s[-1], feats_t[-1], index, contrast_idx)


def index_targets(dataset: Dataset) -> Tuple[np.ndarray, np.ndarray, int]:
    """(index ``[n]`` int64 of each item, target ``[n]`` int64, size of the index space) of a data set whose
    base reports `index` = position and has `.targets`; `Subset`s (a validation hold-out) unwrap."""
    positions = np.arange(len(dataset))
    while isinstance(dataset, Subset):
        positions = np.asarray(dataset.indices, dtype=np.int64)[positions]
        dataset = dataset.dataset
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TopKDError(f"CRD's class-aware negatives need the training set's labels: "
                         f"{type(dataset).__name__} has no .targets attribute")
    targets = np.asarray(targets, dtype=np.int64)
    return positions.astype(np.int64), targets[positions], len(targets)


class ContrastSample(Dataset):
    """Items as dicts with ``contrast_idx`` (int64 ``[k + 1]``): column 0 the positive (the item's own index,
    ``mode="exact"``, or a random item of its class, ``"relax"``), then k negatives of other classes (without
    replacement when there are enough)."""

    fields = ("image", "target", "index", "contrast_idx")  # the keys of an item

    def __init__(self, base: Dataset, k: int, mode: str = "exact"):
        if mode not in CONTRAST_MODES:
            raise TopKDError(f"unknown CRD sampling mode {mode!r}; choose one of: {', '.join(CONTRAST_MODES)}")
        if k < 1:
            raise TopKDError(f"CRD needs at least one negative per sample (--nce_k), got {k}")
        index, targets, self.index_space = index_targets(base)
        order = np.argsort(targets, kind="stable")
        self._by_class = index[order]  # training indices grouped by class
        classes, starts, counts = np.unique(targets[order], return_index=True, return_counts=True)
        if len(classes) < 2:
            raise TopKDError("CRD's negatives come from other classes, but the training set has only one class")
        self._start = {int(c): int(s) for c, s in zip(classes, starts)}
        self._count = {int(c): int(n) for c, n in zip(classes, counts)}
        self.base, self.k, self.mode = base, int(k), mode

    def __len__(self) -> int:
        return len(self.base)

    def contrast_indices(self, index: int, target: int, key: int) -> torch.Tensor:
        """``contrast_idx`` (int64 ``[k + 1]``) of the item with training index ``index`` and class ``target``,
        drawn by ``numpy.random.default_rng(key)`` (``key``: the item's keyed word of ``STREAM_CONTRAST``)."""
        start, count = self._start[int(target)], self._count[int(target)]
        rng = np.random.default_rng(int(key))
        others = len(self._by_class) - count
        pick = rng.choice(others, self.k, replace=others < self.k)
        negatives = self._by_class[np.where(pick < start, pick, pick + count)]  # skip the own class's block
        positive = index if self.mode == "exact" else self._by_class[start + rng.integers(count)]
        return torch.from_numpy(np.concatenate([np.asarray([positive], dtype=np.int64), negatives]))

    def __getitem__(self, i: int):
        image, target, index = self.base[i][:3]
        target = int(target)
        contrast = self.contrast_indices(index, target, item_word(STREAM_CONTRAST))
        return {"image": image, "target": target, "index": index, "contrast_idx": contrast}
