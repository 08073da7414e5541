"""scikit-learn's bundled handwritten digits (1797 8x8 images, 10 classes) as a tiny CIFAR-like set: real data
with no download, for demos and end-to-end tests."""
import functools
import hashlib
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from topkd_io import TopKDError

from .bundle import DataBundle, hold_out
from .registry import digest, register
from .transforms import KeyedRandomCrop


class TensorImages(Dataset):
    """Images ``[N, C, H, W]`` in [0, 1] held in memory; items ``(transform(image), target, index)``."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Optional[Callable] = None):
        self.images, self.targets, self.transform = images, [int(t) for t in targets], transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = self.images[index]
        return (image if self.transform is None else self.transform(image)), self.targets[index], int(index)


def fraction_positions(targets: np.ndarray, fraction: float) -> np.ndarray:
    """Positions (sorted) of a fixed stratified ``fraction`` of ``targets``: the same items for every seed."""
    if not 0 < fraction <= 1:
        raise TopKDError(f"--train_fraction must be in (0, 1], got {fraction}")
    positions, classes = np.arange(len(targets)), len(np.unique(targets))
    if fraction == 1:
        return positions
    if round(fraction * len(targets)) < classes:
        raise TopKDError(f"--train_fraction {fraction} keeps fewer than one training image per class "
                         f"({len(targets)} images, {classes} classes); raise it")
    return np.sort(train_test_split(positions, train_size=fraction, stratify=targets, random_state=0)[0])


@functools.lru_cache(maxsize=None)
def shipped_fingerprint() -> str:
    """The fingerprint of the data scikit-learn ships (pixels and labels)."""
    bunch = load_digits()
    return digest([hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in (bunch.images, bunch.target)])


@register("digits", recipe="cifar", fingerprint=lambda root, download: shipped_fingerprint(), on_device=True)
def build_digits(root: str, download: bool, val_fraction: float, image_size: int = 32,
                 train_augment: bool = True, train_fraction: float = 1.0) -> DataBundle:
    """1437 train / 360 test digits (a fixed stratified 80/20 split, whatever the seed): pixels 0..16 scaled to
    [0, 1], replicated to 3 channels, resized (bilinear) to ``image_size`` and normalized by the whole training
    split's statistics. Training augmentation: random crop with zero padding of image_size/8 pixels, no flip.
    ``train_fraction`` < 1 trains on a fixed stratified part of the 1437 (items keep their index in the 1437, so
    the image-PI caches still fit). `root` and `download` are ignored."""
    image_size = int(image_size)
    if image_size < 8:
        raise TopKDError(f"image_size for digits must be at least 8 pixels, got {image_size}")
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # [N, 1, 8, 8]
    if image_size != 8:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images, targets = images.clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous(), bunch.target.astype(np.int64)
    train_pos, test_pos = train_test_split(np.arange(len(targets)), test_size=0.2, stratify=targets, random_state=0)
    train_images = images[train_pos]
    mean = tuple(float(m) for m in train_images.mean(dim=(0, 2, 3)))
    std = tuple(float(s) for s in train_images.std(dim=(0, 2, 3), correction=0))
    eval_tf = T.Normalize(mean, std)
    padding = image_size // 8
    train_tf = T.Compose(([KeyedRandomCrop(image_size, padding=padding)] if padding else []) + [eval_tf]) \
        if train_augment else eval_tf
    train_full = TensorImages(train_images, torch.from_numpy(targets[train_pos]), train_tf)
    test = TensorImages(images[test_pos], torch.from_numpy(targets[test_pos]), eval_tf)
    keep = fraction_positions(targets[train_pos], float(train_fraction))
    train, val = hold_out(train_full, eval_tf, val_fraction, keep=keep)
    return DataBundle(train=train, val=val, test=test, num_classes=10, in_channels=3,
                      image_size=image_size, name="digits", mean=mean, std=std)
