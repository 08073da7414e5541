"""ImageNet (or any ImageFolder tree) with items `(image, target, index)`.

Expected layout: `<root>/train/<class>/<image>` and `<root>/val/<class>/<image>`, the same class
folders in both (the usual "val sorted into class folders" form of ILSVRC-2012).
"""
from __future__ import annotations

import os

import torchvision

from topkd_io import TopKDError

from . import transforms as tf
from .bundle import DataBundle
from .fingerprint import image_tree
from .registry import register
from .splits import hold_out, with_transform

LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image>"


class IndexedImageFolder(torchvision.datasets.ImageFolder):
    """torchvision's ImageFolder whose items are `(image, target, index)`."""

    def __getitem__(self, index: int):
        image, target = super().__getitem__(index)
        return image, int(target), int(index)


def open_split(folder: str, transform, what: str = "ImageNet", layout: str = LAYOUT) -> IndexedImageFolder:
    """Open one split folder, raising FileNotFoundError (with the expected layout) when absent or empty."""
    has_classes = os.path.isdir(folder) and any(e.is_dir() for e in os.scandir(folder))
    if not has_classes:
        state = "has no class folders" if os.path.isdir(folder) else "does not exist"
        raise FileNotFoundError(f"{what} folder {folder} {state}; expected the layout {layout}")
    try:
        return IndexedImageFolder(folder, transform=transform)
    except FileNotFoundError as err:  # a class folder without images
        raise FileNotFoundError(f"{what} folder {folder}: {err}; expected the layout {layout}") from None


def same_classes(train: IndexedImageFolder, test: IndexedImageFolder, what: str) -> None:
    if test.classes != train.classes:
        differ = sorted(set(train.classes) ^ set(test.classes))
        raise TopKDError(f"{what} train and test folders hold different class folders (e.g. {differ[:3]}); "
                         "both must contain the same class names")


@register("imagenet", recipe="imagenet", fingerprint=image_tree("train", "val"))
def build_imagenet(root: str, download: bool, val_split: float, seed: int, image_size: int = 224,
                   train_augment: bool = True) -> DataBundle:
    """ImageFolder train/val trees; images cropped to `image_size` (224) pixels, ImageNet mean/std.

    `download` is not supported (ImageNet must be obtained by hand); the `val/` folder is the test set.
    """
    if download:
        raise TopKDError("ImageNet cannot be downloaded automatically; drop --download and place it as "
                         + LAYOUT)
    image_size = int(image_size)
    if image_size < 1:
        raise TopKDError(f"image_size must be a positive number of pixels, got {image_size}")
    eval_tf = tf.imagenet_eval(size=image_size)
    train_tf = tf.imagenet_train(size=image_size) if train_augment else eval_tf
    train_full = open_split(os.path.join(root, "train"), train_tf)
    test = open_split(os.path.join(root, "val"), eval_tf)
    same_classes(train_full, test, "ImageNet")
    train, val = hold_out(train_full, with_transform(train_full, eval_tf), train_full.targets,
                          val_split, seed)
    return DataBundle(train=train, val=val, test=test, num_classes=len(train_full.classes), in_channels=3,
                      image_size=image_size, name="imagenet", mean=tf.IMAGENET_MEAN, std=tf.IMAGENET_STD)
