"""Data sets stored as ImageFolder trees ``<root>/<split>/<class>/<image>``, items `(image, target, index)`:
ImageNet (``train/`` and ``val/``, the val images sorted into class folders) and CINIC-10 (TGD's second
benchmark, as distributed: ``train/``, ``valid/`` (unused) and ``test/``, 90,000 32x32 images each)."""
import os

import torchvision

from topkd_io import TopKDError

from . import transforms as tf
from .bundle import DataBundle, Indexed, hold_out
from .registry import image_tree, register

LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image>"
CINIC10_LAYOUT = "<root>/train/<class>/<image> and <root>/test/<class>/<image> (CINIC-10 as distributed)"
CINIC10_MEAN = (0.47889522, 0.47227842, 0.43047404)  # the CINIC-10 authors' channel statistics
CINIC10_STD = (0.24205776, 0.23828046, 0.25874835)


class IndexedImageFolder(Indexed, torchvision.datasets.ImageFolder):
    pass


def open_split(folder: str, transform, what: str = "ImageNet", layout: str = LAYOUT) -> IndexedImageFolder:
    """Open one split folder, raising FileNotFoundError (with the expected layout) when absent or empty."""
    if not (os.path.isdir(folder) and any(e.is_dir() for e in os.scandir(folder))):
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
def build_imagenet(root: str, download: bool, val_fraction: float, image_size: int = 224,
                   train_augment: bool = True) -> DataBundle:
    """ImageFolder train/val trees (``val/`` is the test set); images cropped to `image_size` pixels."""
    if download:
        raise TopKDError("ImageNet cannot be downloaded automatically; drop --download and place it as " + LAYOUT)
    image_size = int(image_size)
    if image_size < 1:
        raise TopKDError(f"image_size must be a positive number of pixels, got {image_size}")
    eval_tf = tf.imagenet_eval(size=image_size)
    train_tf = tf.imagenet_train(size=image_size) if train_augment else eval_tf
    train_full = open_split(os.path.join(root, "train"), train_tf)
    test = open_split(os.path.join(root, "val"), eval_tf)
    same_classes(train_full, test, "ImageNet")
    train, val = hold_out(train_full, eval_tf, val_fraction)
    return DataBundle(train=train, val=val, test=test, num_classes=len(train_full.classes), in_channels=3,
                      image_size=image_size, name="imagenet", mean=tf.IMAGENET_MEAN, std=tf.IMAGENET_STD)


@register("cinic10", recipe="cifar", fingerprint=image_tree("train", "test"))
def build_cinic10(root: str, download: bool, val_fraction: float, train_augment: bool = True,
                  normalize: str = "dataset") -> DataBundle:
    """CINIC-10 train/test trees, CIFAR-style transforms, 10 classes (``normalize``: see `datasets.cifar`)."""
    if download:
        raise TopKDError("CINIC-10 is not downloaded automatically; drop --download and unpack it as "
                         + CINIC10_LAYOUT)
    mean, std = tf.image_statistics(CINIC10_MEAN, CINIC10_STD, normalize)
    eval_tf = tf.cifar_eval(mean, std)
    train_tf = tf.cifar_train(mean, std) if train_augment else eval_tf
    train_full = open_split(os.path.join(root, "train"), train_tf, "CINIC-10", CINIC10_LAYOUT)
    test = open_split(os.path.join(root, "test"), eval_tf, "CINIC-10", CINIC10_LAYOUT)
    same_classes(train_full, test, "CINIC-10")
    train, val = hold_out(train_full, eval_tf, val_fraction)
    return DataBundle(train=train, val=val, test=test, num_classes=len(train_full.classes), in_channels=3,
                      image_size=32, name="cinic10", mean=tuple(mean), std=tuple(std))
