"""`DataBundle`: what `build_datasets` hands to the stage scripts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from torch.utils.data import Dataset

# The entries of a plain item, by position.
ITEM_FIELDS: Tuple[str, ...] = ("image", "target", "index")


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
