"""CINIC-10 (TGD's second benchmark): 32x32 images in an ImageFolder tree, items `(image, target, index)`.

Layout as distributed: `<root>/train/<class>/*.png`, `<root>/valid/...`, `<root>/test/...` (90,000 each).
The `test/` folder is the test set; `valid/` is unused unless you merge it into train yourself. CIFAR
transforms (crop 32 with padding 4, horizontal flip) with the CINIC-10 authors' channel statistics.
"""
from __future__ import annotations

import os

from topkd_io import TopKDError

from . import transforms as tf
from .bundle import DataBundle
from .fingerprint import image_tree
from .imagenet import open_split, same_classes
from .registry import register
from .splits import hold_out, with_transform

CINIC10_MEAN = (0.47889522, 0.47227842, 0.43047404)
CINIC10_STD = (0.24205776, 0.23828046, 0.25874835)
LAYOUT = "<root>/train/<class>/<image> and <root>/test/<class>/<image> (CINIC-10 as distributed)"


@register("cinic10", recipe="cifar", fingerprint=image_tree("train", "test"))
def build_cinic10(root: str, download: bool, val_split: float, seed: int, train_augment: bool = True,
                  normalize: str = "dataset") -> DataBundle:
    """CINIC-10 train/test trees, CIFAR-style transforms, 10 classes (``normalize``: see `datasets.cifar`)."""
    if download:
        raise TopKDError("CINIC-10 is not downloaded automatically; drop --download and unpack it as " + LAYOUT)
    mean, std = tf.image_statistics(CINIC10_MEAN, CINIC10_STD, normalize)
    eval_tf = tf.cifar_eval(mean, std)
    train_tf = tf.cifar_train(mean, std) if train_augment else eval_tf
    train_full = open_split(os.path.join(root, "train"), train_tf, "CINIC-10", LAYOUT)
    test = open_split(os.path.join(root, "test"), eval_tf, "CINIC-10", LAYOUT)
    same_classes(train_full, test, "CINIC-10")
    train, val = hold_out(train_full, with_transform(train_full, eval_tf), train_full.targets, val_split, seed)
    return DataBundle(train=train, val=val, test=test, num_classes=len(train_full.classes), in_channels=3,
                      image_size=32, name="cinic10", mean=tuple(mean), std=tuple(std))
