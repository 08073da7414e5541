"""Class-aware negatives for CRD, drawn in the data-loader workers (RepDistiller's "instance sample").

`ContrastSample(train_set, k, mode)` turns each ``(image, target, index)`` item into a dict with ``contrast_idx``
(int64 ``[k + 1]``): column 0 the positive (the item's own index, ``mode="exact"``, or a random item of its class,
``"relax"``), then k negatives of *other* classes (without replacement when there are enough). Indices live in the
full training set's index space (a held-out validation part is never drawn). The draws come from a numpy generator
seeded with the item's keyed word of ``STREAM_CONTRAST`` (`datasets.keyed`): they follow (seed, epoch, index),
whatever the worker count or a resume.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from topkd_io import TopKDError

from .keyed import STREAM_CONTRAST, item_word

CONTRAST_MODES = ("exact", "relax")


def index_targets(dataset: Dataset) -> Tuple[np.ndarray, np.ndarray, int]:
    """(index ``[n]`` int64 of each item, target ``[n]`` int64, size of the index space) of a data set
    whose base reports `index` = position and has `.targets`; `Subset`s (a validation hold-out) unwrap."""
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
    """See the module docstring. ``k``: negatives per item (CRD's ``nce_k``, 16384 in the paper)."""

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
