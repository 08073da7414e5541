"""A data set added the way docs/ADDING.md says, from this file alone (template: ``build_cinic10`` in
datasets/folders.py): small RGB images in an ImageFolder tree, ``<root>/train/<class>/<image>`` and ``<root>/test/<class>/<image>``.
`tests/test_extensions.py` registers it and runs it through the stage scripts.
"""
import os

from datasets import DataBundle, register
from datasets import transforms as tf
from datasets.bundle import hold_out
from datasets.folders import open_split, same_classes
from datasets.registry import image_tree

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # made up for the test: the files are random pixels
LAYOUT = "<root>/train/<class>/<image> and <root>/test/<class>/<image>"


@register("toy_folder", recipe="cifar", fingerprint=image_tree("train", "test"))  # the CIFAR recipe: small images
def build_toy_folder(root: str, download: bool, val_fraction: float, image_size: int = 16,
                     train_augment: bool = True) -> DataBundle:
    """Train/test trees of ``image_size`` pixel images; CIFAR-style crop (padding image_size / 8) and flip."""
    if download:
        raise ValueError("toy_folder is not downloaded; drop --download and write the tree as " + LAYOUT)
    eval_tf = tf.cifar_eval(MEAN, STD)
    train_tf = tf.cifar_train(MEAN, STD, size=image_size, padding=image_size // 8) if train_augment else eval_tf
    train_full = open_split(os.path.join(root, "train"), train_tf, "toy_folder", LAYOUT)
    test = open_split(os.path.join(root, "test"), eval_tf, "toy_folder", LAYOUT)
    same_classes(train_full, test, "toy_folder")
    train, val = hold_out(train_full, eval_tf, val_fraction)
    return DataBundle(train=train, val=val, test=test, num_classes=len(train_full.classes), in_channels=3,
                      image_size=image_size, name="toy_folder", mean=MEAN, std=STD)
