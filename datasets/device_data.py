"""``--data_on_device``: the whole data set on the training device, batches cut, augmented and normalised
there, with the same random draws as the CPU DataLoader path.

`DeviceView` unwraps a trainer data set (``KeyedItems(ContrastSample(Subset(IndexedCIFAR100)))`` and the like)
down to its in-memory base set and reads the base set's transform op by op (``KeyedRandomCrop`` with zero
padding, ``KeyedHorizontalFlip``, ``ToTensor``, ``Normalize``; anything else is refused). Every per-item draw
is the counter rule of `datasets.keyed`, a function of ``(seed, epoch, position, stream)``, evaluated here for
a whole epoch at once, so both paths agree by construction (images to float32 rounding). Shuffling and DDP
sharding stay with the trainer's samplers: `DeviceLoader` only cuts their keys into batches, collated as on
the CPU path (``(image, target, index[, pi])`` tuples, or a dict with CRD's ``contrast_idx``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch.utils.data import Subset

from distiller.crd import ContrastSample
from topkd_io import TopKDError

from . import keyed
from .cifar import IndexedCIFAR10, IndexedCIFAR100
from .digits import TensorImages
from .keyed import KeyedItems
from .pi_images import PIImages, WithImagePI
from .registry import dataset_info, dataset_names
from .transforms import KeyedHorizontalFlip, KeyedRandomCrop


# ----------------------------------------------------------------------------- transforms
@dataclass
class Augment:
    """A CPU transform read as batched device steps. ``crop``: output ``(h, w)`` or None; ``padding``:
    (left, top, right, bottom) pixels of zeros; ``flip_p``: flip probability (0 = no flip op);
    ``to_unit``: ToTensor (uint8 ``HWC`` -> float ``CHW`` / 255); ``mean``/``std``: per channel or None."""

    crop: Optional[Tuple[int, int]] = None
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)
    flip_p: float = 0.0
    to_unit: bool = False
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None

    @property
    def random(self) -> bool:
        return self.crop is not None or self.flip_p > 0


def _padding4(padding) -> Tuple[int, int, int, int]:
    """torchvision's padding (one int, or 1, 2 or 4 of them) as (left, top, right, bottom)."""
    p = [int(padding)] if isinstance(padding, int) else [int(v) for v in padding]
    return tuple(p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p)  # type: ignore[return-value]


_UNKEYED = {T.RandomCrop: "KeyedRandomCrop", T.RandomHorizontalFlip: "KeyedHorizontalFlip"}


def read_transform(transform) -> Augment:
    """A torchvision ``Compose`` (or one op, or None) -> `Augment`; an op the device path cannot run the way the
    CPU path does (or in another order) -> `TopKDError`."""
    ops = [] if transform is None else list(transform.transforms) if isinstance(transform, T.Compose) else [transform]
    aug, seen = Augment(), []
    for op in ops:
        kind = type(op)  # exactly: torchvision's own RandomCrop/RandomHorizontalFlip draw from torch's generator
        if kind is KeyedRandomCrop:
            if seen:
                raise TopKDError("--data_on_device: RandomCrop must be the first transform")
            if op.pad_if_needed or op.padding_mode != "constant" or op.fill not in (0, 0.0):
                raise TopKDError("--data_on_device supports RandomCrop with constant zero padding only; drop "
                                 "--data_on_device")
            aug.crop = tuple(int(s) for s in op.size)  # type: ignore[assignment]
            aug.padding = _padding4(op.padding) if op.padding is not None else (0, 0, 0, 0)
        elif kind is KeyedHorizontalFlip:
            if seen not in ([], [KeyedRandomCrop]):
                raise TopKDError("--data_on_device: RandomHorizontalFlip must come before ToTensor/Normalize")
            aug.flip_p = float(op.p)
        elif kind is T.ToTensor:
            aug.to_unit = True
        elif kind is T.Normalize:
            if aug.mean is not None:
                raise TopKDError("--data_on_device: the transform normalises twice")
            aug.mean, aug.std = tuple(float(m) for m in op.mean), tuple(float(s) for s in op.std)
        elif kind in _UNKEYED:
            raise TopKDError(f"--data_on_device draws crops and flips by the item key: use datasets.transforms."
                             f"{_UNKEYED[kind]} instead of torchvision's {kind.__name__}")
        else:
            raise TopKDError(f"--data_on_device cannot run the transform {kind.__name__} on the device; drop "
                             f"--data_on_device")
        seen.append(kind)
    return aug


def _padded_size(aug: Augment, height: int, width: int) -> Tuple[int, int]:
    """(rows, columns) of an item after RandomCrop's padding; `TopKDError` when the crop does not fit."""
    ph, pw = height + aug.padding[1] + aug.padding[3], width + aug.padding[0] + aug.padding[2]
    if ph < aug.crop[0] or pw < aug.crop[1]:
        raise TopKDError(f"crop {aug.crop} larger than the padded image {(ph, pw)}")
    return ph, pw


def draw_params(aug: Augment, seed: int, epochs, positions: np.ndarray, height: int, width: int):
    """The keyed draws of `KeyedRandomCrop` and `KeyedHorizontalFlip` (see `datasets.keyed`) for the items
    at ``positions`` (int64 ``[n]``) of ``epochs`` (one int or ``[n]``), images ``height x width`` before
    padding: -> (top int64 ``[n]``, left int64 ``[n]``, flip bool ``[n]``)."""
    n = len(positions)
    top, left, flip = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
    if n == 0:
        return top, left, flip
    if aug.crop is not None:
        (th, tw), (ph, pw) = aug.crop, _padded_size(aug, height, width)
        if (ph, pw) != (th, tw):  # no draw when the sizes already match
            top = keyed.integers(seed, epochs, positions, keyed.STREAM_CROP_ROW, ph - th + 1)
            left = keyed.integers(seed, epochs, positions, keyed.STREAM_CROP_COL, pw - tw + 1)
    if aug.flip_p > 0:
        flip = keyed.units(seed, epochs, positions, keyed.STREAM_FLIP) < aug.flip_p
    return top, left, flip


def apply_augment(aug: Augment, x: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                  flip: torch.Tensor) -> torch.Tensor:
    """Batched transform on ``x`` (float ``[B, C, H, W]``, already in [0, 1] when ToTensor applies):
    zero pad, crop at (``top``, ``left``) (int64 ``[B]``), mirror where ``flip`` (bool ``[B]``), normalise."""
    if aug.crop is not None:
        left_pad, top_pad, right_pad, bottom_pad = aug.padding
        if any(aug.padding):
            x = F.pad(x, (left_pad, right_pad, top_pad, bottom_pad))
        th, tw = aug.crop
        rows = top[:, None] + torch.arange(th, device=x.device)  # [B, th]
        ar = torch.arange(tw, device=x.device)
        cols = left[:, None] + torch.where(flip[:, None], tw - 1 - ar, ar)  # [B, tw], mirrored where flip
        b = torch.arange(x.shape[0], device=x.device)[:, None, None]
        x = x.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [B, C, th, tw]
    elif aug.flip_p > 0:
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = x.contiguous()
    if aug.mean is not None:
        mean = torch.as_tensor(aug.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(aug.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = x.sub(mean).div(std)
    return x


# ----------------------------------------------------------------------------- base sets and wrappers
@dataclass
class Base:
    """An in-memory base set: ``images`` (uint8 ``[N, H, W, C]`` with ``hwc=True``, else float ``[N, C, H, W]``),
    ``targets`` int64 ``[N]``, its transform read as `Augment`; ``reported``: the index item ``row`` reports
    (None = ``row``)."""

    images: torch.Tensor
    targets: torch.Tensor
    augment: Augment
    hwc: bool
    reported: Optional[np.ndarray] = None


def pi_values(x: torch.Tensor) -> torch.Tensor:
    """float32 values of stored PIs: uint8 caches hold levels k for k / 255 (as `datasets.pi_images` reads them);
    float values pass through."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def _base(ds) -> Optional[Base]:
    """The `Base` of an in-memory base set (CIFAR, tensor images, TGD's PI caches), or None for anything else."""
    if not isinstance(ds, (IndexedCIFAR10, IndexedCIFAR100, TensorImages, PIImages)):
        return None
    aug, targets = read_transform(ds.transform), torch.as_tensor(ds.targets, dtype=torch.int64)
    if isinstance(ds, (IndexedCIFAR10, IndexedCIFAR100)):
        if ds.target_transform is not None:
            raise TopKDError("--data_on_device does not run target transforms; drop --data_on_device")
        if not aug.to_unit:
            raise TopKDError("--data_on_device: a CIFAR transform must contain ToTensor")
        return Base(torch.from_numpy(np.ascontiguousarray(ds.data)), targets, aug, hwc=True)
    if aug.to_unit:
        raise TopKDError("--data_on_device: ToTensor on images that are already tensors")
    if isinstance(ds, TensorImages):
        return Base(ds.images, targets, aug, hwc=False)
    if ds.cache.normalize is not None:  # --input_norm tgd: the cache view's PI normalisation, as on the CPU path
        if aug.mean is not None:
            raise TopKDError("--data_on_device: the PI transform normalises twice")
        aug.mean, aug.std = ds.cache.normalize
    pis = torch.from_numpy(np.array(ds.cache.pis))  # stored dtype; made float32 per batch
    if ds.indices is None:
        return Base(pis, targets, aug, hwc=False)
    rows = np.asarray(ds.indices, dtype=np.int64)  # PIImages over a subset of the cache: items report rows
    return Base(pis[torch.from_numpy(rows)], targets[torch.from_numpy(rows)], aug, hwc=False, reported=rows)


def on_device_sets() -> str:
    """The registered data sets that declare ``on_device`` (and TGD's PI caches), as text for messages."""
    return ", ".join(n for n in dataset_names() if dataset_info(n).on_device) + " and TGD's PI caches"


def _not_on_device(ds) -> TopKDError:
    files = [n for n in dataset_names() if not dataset_info(n).on_device]
    return TopKDError(f"--data_on_device works for in-memory data sets ({on_device_sets()}), not "
                      f"{type(ds).__name__} (the others, {', '.join(files)}, are read from image files); "
                      f"drop --data_on_device")


class DeviceView:
    """A trainer data set (any registered chain) held on ``device``; ``batch(keys)`` -> the collated batch.

    keys: positions (ints) for un-keyed sets, or ``(epoch, position)`` pairs from
    `datasets.keyed.KeyedSampler` (a batch may mix epochs: stage 2's passes).
    """

    def __init__(self, dataset, device: torch.device):
        maps, self.seed, self.contrast, self.pi_cache, ds = [], None, None, None, dataset
        while (base := _base(ds)) is None:  # unwrap down to the base set, noting what each wrapper adds
            if isinstance(ds, Subset):
                maps.append(np.asarray(ds.indices, dtype=np.int64))
            elif isinstance(ds, KeyedItems):
                self.seed = int(ds.seed)
            elif isinstance(ds, ContrastSample):
                self.contrast = ds
            elif isinstance(ds, WithImagePI):
                self.pi_cache = ds.cache
            else:
                raise _not_on_device(ds)
            ds = ds.dataset if isinstance(ds, (Subset, KeyedItems)) else ds.base
        position_map = np.arange(len(dataset), dtype=np.int64)
        for m in maps:  # outermost first: p -> maps[0][p] -> maps[1][maps[0][p]] ...
            position_map = m[position_map]
        self.device = torch.device(device)
        self.augment, self.hwc = base.augment, base.hwc
        if (self.augment.random or self.contrast is not None) and self.seed is None:
            raise TopKDError("--data_on_device: this set has random draws but its items are not keyed by "
                             "(seed, epoch, index) (wrap it in datasets.keyed.KeyedItems)")
        self.base_rows = position_map  # position -> base row (= the reported index)
        self.reported = position_map if base.reported is None else base.reported[position_map]
        self.images = base.images.to(self.device)
        self.targets = base.targets.to(self.device)
        self.targets_cpu = base.targets.numpy()
        self.height, self.width = (base.images.shape[1:3] if self.hwc else base.images.shape[2:4])
        self.pis = None
        if self.pi_cache is not None:
            cache_targets = np.asarray(self.pi_cache.targets, dtype=np.int64)
            if len(cache_targets) <= int(self.reported.max(initial=0)):
                raise TopKDError(f"the image-PI cache {self.pi_cache.folder} has {len(cache_targets)} items, fewer "
                                 f"than the data set; it was made for another data set or split")
            bad = np.nonzero(cache_targets[self.reported] != base.targets.numpy()[self.base_rows])[0]
            if len(bad):
                raise TopKDError(f"item {int(self.reported[bad[0]])}: the image-PI cache {self.pi_cache.folder} "
                                 f"holds another target; the cache was made from other data")
            self.pis = torch.from_numpy(np.array(self.pi_cache.pis)).to(self.device)  # read the memory map once

    def __len__(self) -> int:
        return len(self.base_rows)

    def _pixels(self, rows: np.ndarray, top, left, flip) -> torch.Tensor:
        """Gather base ``rows`` on the device and apply the transform with the given draws."""
        dev = self.device
        x = self.images[torch.from_numpy(rows).to(dev, non_blocking=True)]
        x = x.permute(0, 3, 1, 2).float().div(255) if self.hwc else (
            x.float().div(255) if self.augment.to_unit else pi_values(x))
        as_tensor = lambda a, dtype: torch.from_numpy(np.asarray(a, dtype=dtype)).to(dev)  # noqa: E731
        return apply_augment(self.augment, x, as_tensor(top, np.int64), as_tensor(left, np.int64),
                             as_tensor(flip, bool))

    @staticmethod
    def split_keys(keys: Sequence) -> Tuple[np.ndarray, np.ndarray]:
        """Sampler keys -> (epochs int64 ``[n]``, positions int64 ``[n]``); plain ints are epoch 0."""
        if len(keys) and isinstance(keys[0], tuple):
            pairs = np.asarray(keys, dtype=np.int64).reshape(-1, 2)
            return pairs[:, 0].copy(), pairs[:, 1].copy()
        positions = np.asarray(keys, dtype=np.int64).reshape(-1)
        return np.zeros_like(positions), positions

    def draws(self, keys: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(top, left, flip) of the items at ``keys``, all keys in one vectorised pass."""
        epochs, positions = self.split_keys(keys)
        if not self.augment.random:
            n = len(positions)
            return np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
        return draw_params(self.augment, self.seed, epochs, positions, self.height, self.width)

    def contrast_rows(self, keys: Sequence) -> torch.Tensor:
        """CRD's ``contrast_idx`` (int64 ``[n, k + 1]``) of the items at ``keys``: each item's keyed seed
        (``STREAM_CONTRAST``) vectorised, then CRD's own numpy draw per item, as on the CPU path."""
        epochs, positions = self.split_keys(keys)
        rows = self.base_rows[positions]
        seeds = keyed.words(self.seed, epochs, positions, keyed.STREAM_CONTRAST)
        return torch.stack([self.contrast.contrast_indices(int(i), int(t), int(s)) for i, t, s in
                            zip(self.reported[positions], self.targets_cpu[rows], seeds)])

    def batch(self, keys: Sequence, draws=None) -> Any:
        """Collated batch of the items at ``keys`` (see the class docstring), on the device. ``draws``:
        `draws(keys)` computed beforehand (e.g. for a whole epoch at once), else computed here."""
        _, positions = self.split_keys(keys)
        rows, reported = self.base_rows[positions], self.reported[positions]
        rows_dev = torch.from_numpy(rows).to(self.device, non_blocking=True)
        target = self.targets[rows_dev]
        top, left, flip = draws if draws is not None else self.draws(keys)
        x = self._pixels(rows, top, left, flip)
        dev = self.device
        index = torch.from_numpy(reported).to(dev)
        if self.contrast is not None:
            return {"image": x, "target": target, "index": index,
                    "contrast_idx": self.contrast_rows(keys).to(dev)}
        if self.pis is not None:
            return x, target, index, self.pi_cache.as_input(pi_values(self.pis[index]))
        return x, target, index


class DeviceLoader:
    """Cuts the keys of ``sampler`` into batches of ``batch_size`` and yields ``view.batch(keys)``.
    ``len()`` and ``drop_last`` as torch's DataLoader."""

    def __init__(self, dataset, sampler, batch_size: int, device: torch.device, drop_last: bool = False):
        self.view = dataset if isinstance(dataset, DeviceView) else DeviceView(dataset, device)
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        keys = list(self.sampler)
        stop = len(self) * self.batch_size if self.drop_last else len(keys)
        view = self.view
        epoch_draws = view.draws(keys[:stop])  # crops and flips of the whole epoch in one vectorised pass
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, stop)
            yield view.batch(keys[start:end], tuple(d[start:end] for d in epoch_draws))
