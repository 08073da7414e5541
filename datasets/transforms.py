"""Normalization constants and the standard train/eval transforms of each data set (ending in a normalized float
tensor ``[C, H, W]``). Random crops and flips are `KeyedRandomCrop` / `KeyedHorizontalFlip`: torchvision's ops
drawing from the item's key (`datasets.keyed`), so the device path makes the same draws for a whole batch."""
from typing import Sequence, Tuple

import torchvision.transforms as T
import torchvision.transforms.functional as F

from topkd_io import TopKDError

from .keyed import STREAM_CROP_COL, STREAM_CROP_ROW, STREAM_FLIP, item_integer, item_unit

# per-channel RGB statistics of the training images, pixel values scaled to [0, 1]
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# TGD's official loader (github.com/jeunsom/TGD, data_loader_custom.py, get_cifar): what its networks were
# trained on. Line 104: the images (CIFAR-10 in its code) are normalised with CIFAR-100's statistics, rounded
# to three digits (`normalizeS`); line 102: the 6 PI channels (rows then columns of R, G, B, read from the
# uint8 PNGs as level / 255) with fixed per-channel constants (`normalizeT`, the three RGB values repeated).
# Its main_train.py (lines 132-147) feeds the former to the student and the image teacher, the latter to
# the PI teacher.
TGD_IMAGE_MEAN = (0.507, 0.487, 0.441)
TGD_IMAGE_STD = (0.267, 0.256, 0.276)
TGD_PI_MEAN = (0.05165074, 0.05487815, 0.06697452) * 2
TGD_PI_STD = (0.12468914, 0.12733056, 0.13768335) * 2
# --input_norm: "tgd" = TGD's loader constants above (images of the RGB sets that take a `normalize`
# option, and every 6-channel PI cache); "dataset" = each data set's own statistics and raw PIs in [0, 1]
INPUT_NORMS = ("tgd", "dataset")


def image_statistics(mean: Sequence[float], std: Sequence[float], normalize: str = "dataset"):
    """``(mean, std)`` the images are normalised with: the data set's own, or TGD's loader constants."""
    if normalize not in INPUT_NORMS:
        raise TopKDError(f"--input_norm must be one of {', '.join(INPUT_NORMS)}, got {normalize!r}")
    return (TGD_IMAGE_MEAN, TGD_IMAGE_STD) if normalize == "tgd" else (tuple(mean), tuple(std))


class KeyedRandomCrop(T.RandomCrop):
    """torchvision's ``RandomCrop`` (same arguments and pixel work) whose offsets are the item's keyed draws:
    row ``word(.., STREAM_CROP_ROW) mod (H - h + 1)``, column ``word(.., STREAM_CROP_COL) mod (W - w + 1)``
    of the padded ``H x W`` image (no draw when the sizes already match)."""

    @staticmethod
    def get_params(img, output_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
        _, h, w = F.get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise TopKDError(f"Required crop size {(th, tw)} is larger than input image size {(h, w)}")
        if w == tw and h == th:
            return 0, 0, h, w
        return item_integer(STREAM_CROP_ROW, h - th + 1), item_integer(STREAM_CROP_COL, w - tw + 1), th, tw


class KeyedHorizontalFlip(T.RandomHorizontalFlip):
    """``RandomHorizontalFlip`` mirroring when the item's keyed real of ``STREAM_FLIP`` is below ``p``."""

    def forward(self, img):
        return F.hflip(img) if item_unit(STREAM_FLIP) < self.p else img


def cifar_train(mean: Sequence[float], std: Sequence[float], size: int = 32, padding: int = 4):
    """RepDistiller's CIFAR training transform: pad-and-crop, horizontal flip, tensor, normalize."""
    return T.Compose([KeyedRandomCrop(size, padding=padding), KeyedHorizontalFlip(), T.ToTensor(),
                      T.Normalize(mean, std)])


def cifar_eval(mean: Sequence[float], std: Sequence[float]):
    return T.Compose([T.ToTensor(), T.Normalize(mean, std)])


def imagenet_train(size: int = 224):
    """Random resized crop to `size` pixels, flip, tensor, normalize (the CPU path only)."""
    return T.Compose([T.RandomResizedCrop(size),  # draws from torch's generator, which KeyedItems seeds by the key
                      KeyedHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def imagenet_eval(size: int = 224):
    """Resize the short side to size * 256 / 224, center crop `size`, tensor, normalize."""
    return T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
