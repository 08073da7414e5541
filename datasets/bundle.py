"""`DataBundle`: what `build_datasets` hands to the stage scripts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from torch.utils.data import Dataset


@dataclass
class DataBundle:
    """Train/val/test sets of one data set plus the facts a model and a loop need.

    Every item of each set is `(image, target, index)`: image a float tensor `[in_channels, H, W]`
    (normalized with `mean`/`std`), target an int class id, index an int into the original
    training (or test) set. `val` is None unless a validation split was asked for; it is drawn from
    the training data and uses the evaluation transforms.
    """

    train: Dataset
    val: Optional[Dataset]
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    name: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
