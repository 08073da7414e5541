"""``--data_on_device``: the whole data set on the training device, batches cut, augmented and normalised there
with the same keyed draws as the CPU DataLoader path (the rule of `datasets.keyed`, for a whole epoch at once).
`DeviceView` unwraps a trainer data set down to its in-memory base set and reads its transform op by op (anything
but keyed crops and flips, ``ToTensor`` and ``Normalize`` is refused)."""
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
from torch.utils.data import Subset

from topkd_io import TopKDError

from . import keyed
from .digits import TensorImages
from .keyed import KeyedItems
from .pi_images import PIImages, WithImagePI
from .registry import dataset_info, dataset_names
from .transforms import KeyedHorizontalFlip, KeyedRandomCrop


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


_UNKEYED = {T.RandomCrop: "KeyedRandomCrop", T.RandomHorizontalFlip: "KeyedHorizontalFlip"}


def read_transform(transform) -> Augment:
    """A torchvision ``Compose`` (or one op, or None) -> `Augment`; ops it cannot run as the CPU does: refused."""
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
            aug.crop = tuple(int(s) for s in op.size)
            p = [0] if op.padding is None else [op.padding] if isinstance(op.padding, int) else list(op.padding)
            aug.padding = tuple(int(v) for v in (p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p))
        elif kind is KeyedHorizontalFlip:
            if seen not in ([], [KeyedRandomCrop]):
                raise TopKDError("--data_on_device: RandomHorizontalFlip must come before ToTensor/Normalize")
            aug.flip_p = float(op.p)
        elif kind is T.ToTensor:
            aug.to_unit = True
        elif kind is T.Normalize and aug.mean is None:
            aug.mean, aug.std = tuple(float(m) for m in op.mean), tuple(float(s) for s in op.std)
        elif kind in _UNKEYED:
            raise TopKDError(f"--data_on_device draws crops and flips by the item key: use datasets.transforms."
                             f"{_UNKEYED[kind]} instead of torchvision's {kind.__name__}")
        else:
            raise TopKDError(f"--data_on_device cannot run the transform {kind.__name__} on the device; drop "
                             f"--data_on_device")
        seen.append(kind)
    return aug


def apply_augment(aug: Augment, x: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                  flip: torch.Tensor) -> torch.Tensor:
    """Batched transform on ``x`` (float ``[B, C, H, W]``, already in [0, 1] when ToTensor applies):
    zero pad, crop at (``top``, ``left``) (int64 ``[B]``), mirror where ``flip`` (bool ``[B]``), normalise."""
    if aug.crop is not None:
        pad_left, pad_top, pad_right, pad_bottom = aug.padding
        if any(aug.padding):
            x = F.pad(x, (pad_left, pad_right, pad_top, pad_bottom))
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


def pi_values(x: torch.Tensor) -> torch.Tensor:
    """float32 values of stored PIs: uint8 caches hold levels k for k / 255 (as `datasets.pi_images` reads them)."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def _base(ds) -> Optional[Tuple[torch.Tensor, Augment]]:
    """(images, transform as `Augment`) of an in-memory base set: CIFAR (uint8 ``[N, H, W, C]``), tensor images
    or TGD's PI caches (stored dtype, ``[N, C, H, W]``); None for anything else."""
    if not isinstance(ds, (torchvision.datasets.CIFAR10, TensorImages, PIImages)):  # CIFAR-100 subclasses CIFAR-10
        return None
    aug = read_transform(ds.transform)
    if isinstance(ds, torchvision.datasets.CIFAR10):
        if ds.target_transform is not None or not aug.to_unit:
            raise TopKDError("--data_on_device runs CIFAR transforms that contain ToTensor and no target transform; "
                             "drop --data_on_device")
        return torch.from_numpy(np.ascontiguousarray(ds.data)), aug
    if aug.to_unit:
        raise TopKDError("--data_on_device: ToTensor on images that are already tensors")
    if isinstance(ds, TensorImages):
        return ds.images, aug
    if ds.cache.normalize is not None:  # --input_norm tgd: the cache view's PI normalisation, as on the CPU path
        if aug.mean is not None:
            raise TopKDError("--data_on_device: the PI transform normalises twice")
        aug.mean, aug.std = ds.cache.normalize
    return torch.from_numpy(np.array(ds.cache.pis)), aug


class DeviceView:
    """A trainer data set (any registered chain) held on ``device``; ``batch(keys)`` -> the collated batch. keys:
    positions (ints), or ``(epoch, position)`` pairs of `KeyedSampler` (a batch may mix epochs: stage 2's passes)."""

    def __init__(self, dataset, device: torch.device):
        maps, self.seed, self.contrast, self.pi_cache, ds = [], None, None, None, dataset
        while (base := _base(ds)) is None:  # unwrap down to the base set, noting what each wrapper adds
            if isinstance(ds, Subset):
                maps.append(np.asarray(ds.indices, dtype=np.int64))
            elif isinstance(ds, KeyedItems):
                self.seed = int(ds.seed)
            elif isinstance(ds, WithImagePI):
                self.pi_cache = ds.cache
            elif hasattr(ds, "contrast_indices"):  # CRD's negatives
                self.contrast = ds
            else:
                memory = [n for n in dataset_names() if dataset_info(n).on_device]
                files = [n for n in dataset_names() if not dataset_info(n).on_device]
                raise TopKDError(f"--data_on_device works for in-memory data sets ({', '.join(memory)} and TGD's PI "
                                 f"caches), not {type(ds).__name__} (the others, {', '.join(files)}, are read from "
                                 f"image files); drop --data_on_device")
            ds = ds.dataset if isinstance(ds, (Subset, KeyedItems)) else ds.base
        position_map = np.arange(len(dataset), dtype=np.int64)
        for m in maps:  # outermost first: p -> maps[0][p] -> maps[1][maps[0][p]] ...
            position_map = m[position_map]
        images, self.augment = base
        self.device, self.hwc = torch.device(device), isinstance(ds, torchvision.datasets.CIFAR10)
        draws = self.augment.crop is not None or self.augment.flip_p > 0 or self.contrast is not None
        if draws and self.seed is None:
            raise TopKDError("--data_on_device: this set has random draws but its items are not keyed by "
                             "(seed, epoch, index) (wrap it in datasets.keyed.KeyedItems)")
        self.rows = position_map  # position -> base row (= the reported index)
        self.targets_cpu = np.asarray(ds.targets, dtype=np.int64)
        self.images, self.targets = images.to(self.device), torch.from_numpy(self.targets_cpu).to(self.device)
        self.height, self.width = images.shape[1:3] if self.hwc else images.shape[2:4]
        self.pis = None
        if self.pi_cache is not None:
            cache_targets = np.asarray(self.pi_cache.targets, dtype=np.int64)
            if len(cache_targets) <= int(self.rows.max(initial=0)):
                raise TopKDError(f"the image-PI cache {self.pi_cache.folder} has {len(cache_targets)} items, fewer "
                                 f"than the data set; it was made for another data set or split")
            bad = np.nonzero(cache_targets[self.rows] != self.targets_cpu[self.rows])[0]
            if len(bad):
                raise TopKDError(f"item {int(self.rows[bad[0]])}: the image-PI cache {self.pi_cache.folder} "
                                 f"holds another target; the cache was made from other data")
            self.pis = torch.from_numpy(np.array(self.pi_cache.pis)).to(self.device)  # read the memory map once

    @staticmethod
    def split_keys(keys: Sequence) -> Tuple[np.ndarray, np.ndarray]:
        """Sampler keys -> (epochs int64 ``[n]``, positions int64 ``[n]``); plain ints are epoch 0."""
        pairs = np.asarray([k if isinstance(k, tuple) else (0, k) for k in keys], dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def draws(self, keys: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The keyed draws of `KeyedRandomCrop` and `KeyedHorizontalFlip` for the items at ``keys``, all in one
        vectorised pass -> (top int64 ``[n]``, left int64 ``[n]``, flip bool ``[n]``)."""
        epochs, positions = self.split_keys(keys)
        aug, n, seed = self.augment, len(positions), self.seed
        top, left, flip = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
        if n and aug.crop is not None:
            (th, tw), (left_pad, top_pad, right_pad, bottom_pad) = aug.crop, aug.padding
            ph, pw = self.height + top_pad + bottom_pad, self.width + left_pad + right_pad
            if ph < th or pw < tw:
                raise TopKDError(f"crop {aug.crop} larger than the padded image {(ph, pw)}")
            if (ph, pw) != (th, tw):  # no draw when the sizes already match
                top = keyed.integers(seed, epochs, positions, keyed.STREAM_CROP_ROW, ph - th + 1)
                left = keyed.integers(seed, epochs, positions, keyed.STREAM_CROP_COL, pw - tw + 1)
        if n and aug.flip_p > 0:
            flip = keyed.units(seed, epochs, positions, keyed.STREAM_FLIP) < aug.flip_p
        return top, left, flip

    def batch(self, keys: Sequence, draws=None) -> Any:
        """Collated batch of the items at ``keys`` on the device; ``draws``: `draws(keys)` computed beforehand."""
        epochs, positions = self.split_keys(keys)
        dev, index = self.device, torch.from_numpy(self.rows[positions]).to(self.device)  # = the base rows
        x = self.images[index]
        x = x.permute(0, 3, 1, 2).float().div(255) if self.hwc else (
            x.float().div(255) if self.augment.to_unit else pi_values(x))
        top, left, flip = (torch.from_numpy(np.asarray(a)).to(dev) for a in (draws or self.draws(keys)))
        x = apply_augment(self.augment, x, top, left, flip)
        target = self.targets[index]
        if self.contrast is not None:  # CRD's contrast_idx [n, k + 1]: each item's keyed seed, then CRD's own draw
            seeds = keyed.words(self.seed, epochs, positions, keyed.STREAM_CONTRAST)
            rows = torch.stack([self.contrast.contrast_indices(int(i), int(t), int(s)) for i, t, s in
                                zip(self.rows[positions], self.targets_cpu[self.rows[positions]], seeds)])
            return {"image": x, "target": target, "index": index, "contrast_idx": rows.to(dev)}
        if self.pis is not None:
            return x, target, index, self.pi_cache.as_input(pi_values(self.pis[index]))
        return x, target, index


class DeviceLoader:
    """``view.batch(keys)`` of the keys of ``sampler`` cut into batches; ``len()`` and ``drop_last`` as DataLoader's."""

    def __init__(self, dataset, sampler, batch_size: int, device: torch.device, drop_last: bool = False):
        self.view = dataset if isinstance(dataset, DeviceView) else DeviceView(dataset, device)
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        keys = list(self.sampler)
        stop = len(self) * self.batch_size if self.drop_last else len(keys)
        epoch_draws = self.view.draws(keys[:stop])  # crops and flips of the whole epoch in one vectorised pass
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, stop)
            yield self.view.batch(keys[start:end], tuple(d[start:end] for d in epoch_draws))
