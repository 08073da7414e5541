"""`DataBundle`: what `build_datasets` hands to the stage scripts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from torch.utils.data import Dataset

# The entries of a plain item, by position.
ITEM_FIELDS: Tuple[str, ...] = ("image", "target", "index")


@dataclass
class DataBundle:
    """Train/val/test sets of one data set plus the facts a model and a loop need.

    Every item of each set is `(image, target, index)`: image a float tensor `[in_channels, H, W]`
    (normalized with `mean`/`std`), target an int class id, index an int into the original
    training (or test) set. `val` is None unless a validation split was asked for; it is drawn from
    the training data and uses the evaluation transforms.

    `fields`: the names of the entries of a training item, by position (``image, target, index`` and
    whatever a wrapper appends, e.g. TGD's ``pi``), or the keys of a dict item (CRD's ``contrast_idx``).
    The trainer passes every entry after ``image`` and ``target`` to the method as a keyword of that name,
    and refuses a method whose ``batch_fields`` the data does not yield.
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
    fields: Tuple[str, ...] = ITEM_FIELDS
