"""CIFAR-100 and CIFAR-10 through torchvision, items `(image, target, index)`."""
import os

import torchvision

from . import transforms as tf
from .bundle import DataBundle, Indexed, hold_out
from .registry import Fingerprint, declared_md5s, file_md5s, register


class IndexedCIFAR10(Indexed, torchvision.datasets.CIFAR10):
    pass


class IndexedCIFAR100(Indexed, torchvision.datasets.CIFAR100):
    """Fine labels."""


def _missing(cls, label: str, root: str) -> FileNotFoundError:
    """What to do about a CIFAR folder that is absent, incomplete or fails torchvision's md5 check."""
    folder = os.path.join(root, cls.base_folder)
    if os.path.isdir(folder):
        return FileNotFoundError(f"{cls.base_folder} files in {folder} are missing or fail torchvision's md5 check; "
                                 "delete that folder and rerun with --download, or point --data_root at a good copy")
    return FileNotFoundError(f"{label} data not found: expected folder {folder}; "
                             "pass --download to fetch it, or point --data_root at the folder that contains it")


def _fingerprint(cls, label: str) -> Fingerprint:
    """The MD5s of the files torchvision reads; before a --download, those it checks the download against."""
    entries = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]

    def fingerprint(root: str, download: bool = False) -> str:
        folder, names = os.path.join(root, cls.base_folder), [name for name, _ in entries]
        if all(os.path.isfile(os.path.join(folder, n)) for n in names):
            return file_md5s(folder, names)
        if download:
            return declared_md5s(entries)
        raise _missing(cls, label, root)

    return fingerprint


def _build(cls, label: str, name: str, num_classes: int, mean, std, root: str, download: bool,
           val_fraction: float, train_augment: bool, normalize: str) -> DataBundle:
    """Both splits of one CIFAR variant and the held-out part (``normalize``: ``dataset`` or ``tgd``)."""
    mean, std = tf.image_statistics(mean, std, normalize)
    eval_tf = tf.cifar_eval(mean, std)
    sets = []
    for train, transform in ((True, tf.cifar_train(mean, std) if train_augment else eval_tf), (False, eval_tf)):
        try:
            sets.append(cls(root=root, train=train, transform=transform, download=download and train))
        except RuntimeError as err:
            if "not found or corrupted" not in str(err):
                raise
            raise _missing(cls, label, root) from None
    train, val = hold_out(sets[0], eval_tf, val_fraction)
    return DataBundle(train=train, val=val, test=sets[1], num_classes=num_classes, in_channels=3,
                      image_size=32, name=name, mean=tuple(mean), std=tuple(std))


@register("cifar100", recipe="cifar", fingerprint=_fingerprint(IndexedCIFAR100, "CIFAR-100"), on_device=True)
def build_cifar100(root: str, download: bool, val_fraction: float,
                   train_augment: bool = True, normalize: str = "dataset") -> DataBundle:
    """CIFAR-100: 50,000 train / 10,000 test 32x32 RGB images, 100 fine classes."""
    return _build(IndexedCIFAR100, "CIFAR-100", "cifar100", 100, tf.CIFAR100_MEAN, tf.CIFAR100_STD, root,
                  download, val_fraction, train_augment, normalize)


@register("cifar10", recipe="cifar", fingerprint=_fingerprint(IndexedCIFAR10, "CIFAR-10"), on_device=True)
def build_cifar10(root: str, download: bool, val_fraction: float,
                  train_augment: bool = True, normalize: str = "dataset") -> DataBundle:
    """CIFAR-10: 50,000 train / 10,000 test 32x32 RGB images, 10 classes."""
    return _build(IndexedCIFAR10, "CIFAR-10", "cifar10", 10, tf.CIFAR10_MEAN, tf.CIFAR10_STD, root,
                  download, val_fraction, train_augment, normalize)
