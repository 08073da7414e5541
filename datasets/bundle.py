"""`DataBundle`, what `build_datasets` hands to the stage scripts, and holding out a validation part."""
import copy
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, Subset

from topkd_io import TopKDError

ITEM_FIELDS: Tuple[str, ...] = ("image", "target", "index")  # the entries of a plain item, by position


@dataclass
class DataBundle:
    """Train/val/test sets of one data set plus the facts a model and a loop need. Items are ``(image, target,
    index)``: a normalized float ``[in_channels, H, W]``, an int class, the item's index in the full training
    (or test) set; ``val`` (None unless asked for) is held out of the training data, with eval transforms.
    ``fields``: the names of a training item's entries (with what wrappers append, e.g. TGD's ``pi``, or CRD's
    dict keys); the trainer passes those after image and target to the method as keywords."""

    train: Dataset
    val: Optional[Dataset]
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    name: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    fields: Tuple[str, ...] = ITEM_FIELDS


class Indexed:
    """Mixin (first among the bases): a torchvision set's items as ``(image, target, index)``."""

    def __getitem__(self, index: int):
        image, target = super().__getitem__(index)
        return image, int(target), int(index)


# The key of the held-out draw: one constant, never the run's seed, so every method and seed trained with the
# same data and --val_fraction selects its checkpoint on the same images (and pairs of runs stay comparable).
SPLIT_KEY = 0


def check_val_fraction(val_fraction) -> float:
    try:
        value = float(val_fraction)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise TopKDError(f"val_fraction must be a number in [0, 1) (a fraction of the training set), "
                         f"got {val_fraction!r}")
    return value


def split_indices(targets: Sequence[int], val_fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) positions, drawn with `SPLIT_KEY`: stratified by `targets` when possible, else not."""
    targets = np.asarray(targets)
    n, n_val = len(targets), int(round(val_fraction * len(targets)))
    if n_val < 1 or n_val >= n:
        raise TopKDError(f"val_fraction={val_fraction} leaves an empty train or val part of {n} training items; "
                         "choose a fraction between 1/N and 1 - 1/N")
    try:
        train, val = train_test_split(np.arange(n), test_size=n_val, stratify=targets, random_state=SPLIT_KEY)
    except ValueError:  # a class too small, or fewer val slots than classes
        train, val = train_test_split(np.arange(n), test_size=n_val, random_state=SPLIT_KEY)
    return np.sort(train), np.sort(val)


def with_transform(dataset: Dataset, transform) -> Dataset:
    """A shallow copy of `dataset` (sharing its data arrays) that uses another `transform`."""
    other = copy.copy(dataset)
    other.transform = transform
    return other


def hold_out(train_set: Dataset, eval_transform, val_fraction: float,
             keep: Optional[np.ndarray] = None) -> Tuple[Dataset, Optional[Dataset]]:
    """(train, val) of ``train_set`` (which has ``.targets``): val items are the same data under
    ``eval_transform``. ``keep``: sorted positions to train on (default all); items keep their own index."""
    targets = np.asarray(train_set.targets)
    keep = np.arange(len(targets)) if keep is None else np.asarray(keep)
    if val_fraction == 0.0:
        return (train_set if len(keep) == len(targets) else Subset(train_set, keep.tolist())), None
    train, val = split_indices(targets[keep], val_fraction)
    val_set = Subset(with_transform(train_set, eval_transform), keep[val].tolist())
    return Subset(train_set, keep[train].tolist()), val_set
