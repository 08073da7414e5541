"""Holding out a validation part of a training set."""
from __future__ import annotations

import copy
from typing import Optional, Sequence, Tuple

import numpy as np
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, Subset

from topkd_io import TopKDError


def check_val_split(val_split) -> float:
    """`val_split` as a float in [0, 1), else `TopKDError`."""
    try:
        value = float(val_split)
    except (TypeError, ValueError):
        raise TopKDError(f"val_split must be a number in [0, 1), got {val_split!r}") from None
    if not 0.0 <= value < 1.0:
        raise TopKDError(f"val_split must be in [0, 1) (a fraction of the training set), got {val_split!r}")
    return value


def split_indices(targets: Sequence[int], val_split: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split positions 0..N-1 into (train, val) index arrays, both sorted ascending.

    Stratified by `targets` when every class can give at least one item to each side; otherwise a
    seeded random split. Deterministic given `seed`.
    """
    targets = np.asarray(targets)
    n = len(targets)
    n_val = int(round(val_split * n))
    if n_val < 1 or n_val >= n:
        raise TopKDError(
            f"val_split={val_split} leaves an empty train or val part of {n} training items; "
            "choose a fraction between 1/N and 1 - 1/N"
        )
    positions = np.arange(n)
    try:
        train_idx, val_idx = train_test_split(
            positions, test_size=n_val, stratify=targets, random_state=seed)
    except ValueError:  # a class too small, or fewer val slots than classes: plain random split
        train_idx, val_idx = train_test_split(positions, test_size=n_val, random_state=seed)
    return np.sort(train_idx), np.sort(val_idx)


def with_transform(dataset: Dataset, transform) -> Dataset:
    """A shallow copy of `dataset` (sharing its data arrays) that uses another `transform`."""
    other = copy.copy(dataset)
    other.transform = transform
    return other


def hold_out(train_set: Dataset, eval_view: Dataset, targets: Sequence[int], val_split: float,
             seed: int) -> Tuple[Dataset, Optional[Dataset]]:
    """Split a training set into (train, val); val items come from `eval_view` (same data, eval transforms).

    The returned items keep the index of the full training set, since the base sets report it.
    """
    if val_split == 0.0:
        return train_set, None
    train_idx, val_idx = split_indices(targets, val_split, seed)
    return Subset(train_set, train_idx.tolist()), Subset(eval_view, val_idx.tolist())
