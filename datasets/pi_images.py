"""TGD's image persistence images: an on-disk cache for a whole split, and the data sets that serve it.

Cache folder layout (one per data set and split, `<cache_root>/<dataset>_<split>/`):

- `pi.npy`       `[N, 2C, R, R]` uint8 (levels k of k / 255: the official PNG values, for PIs quantised
                 to 8 bits, the default), float16 or float32 (`np.load(..., mmap_mode="r")`), row i = item i;
- `targets.npy`  `[N]` int64, the class of item i (so the PI teacher needs no image data);
- `done.npy`     `[num_chunks]` bool, which chunks are written (resume);
- `manifest.yaml` format version, dataset, split, count, channels, dtype, chunk size, the image
  `layout` ("persim", the official one, or the old "gudhi"), the `ImagePIParams`, and `complete`.

A cache holds one layout; reading it for another layout (or resuming it with another) is refused.

PIs are computed from the un-normalized image in [0, 1] (ToTensor only, no augmentation), by
`topology.image_pi.image_pis`, in parallel over chunks, and a rerun of the same command resumes.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from topkd_io import read_yaml, save_npy, write_yaml
from topology.image_pi import ImagePIParams, image_pis, to_uint8

from .bundle import DataBundle
from .registry import build_datasets, dataset_names
from .splits import hold_out, with_transform

CACHE_VERSION = 1
# The recipe the PI teacher trains with (train_teacher.py --input pi): TGD's.
PI_RECIPE = "tgd"
DTYPES = ("uint8", "float16", "float32")
MAKE_HINT = "python generate_image_PI.py --dataset {dataset} --split {split} --data_root DATA --out {root}"


def cache_folder(cache_root, dataset: str, split: str) -> Path:
    """`<cache_root>/<dataset>_<split>`."""
    return Path(cache_root) / f"{dataset}_{split}"


# ----------------------------------------------------------------------------------------------------
# Raw (un-normalized, un-augmented) images of a split
# ----------------------------------------------------------------------------------------------------

def to_unit_tensor(image) -> torch.Tensor:
    """PIL image or float tensor in [0, 1] -> float tensor `[C, H, W]` in [0, 1] (ToTensor only)."""
    if isinstance(image, torch.Tensor):
        return image.float()
    return TF.to_tensor(image)


# name -> function(data_root, split) -> Dataset of (image [C, H, W] in [0, 1], target, ...), for sources that
# are not registered data sets; a registered data set (`datasets.dataset_names()`) is its own source.
RAW_SOURCES: Dict[str, Callable[[str, str], Dataset]] = {}


def raw_source(name: str):
    """Decorator registering a raw-image source for `generate_image_PI.py --dataset NAME`."""

    def wrap(fn):
        RAW_SOURCES[name] = fn
        return fn

    return wrap


def _bundle_split(name: str, data_root: str, split: str) -> Dataset:
    if split not in ("train", "test"):
        raise ValueError(f"split for {name!r} must be 'train' or 'test', got {split!r}")
    bundle = build_datasets(name, root=data_root, train_augment=False)
    full = bundle.train if split == "train" else bundle.test
    return with_transform(full, to_unit_tensor)


@raw_source("imagefolder")
def _imagefolder_split(data_root: str, split: str) -> Dataset:
    """An ImageFolder tree `<data_root>/<split>/<class>/<image>` (CINIC-10: train / valid / test)."""
    from torchvision.datasets import ImageFolder

    folder = Path(data_root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} not found; pass --data_root holding {split}/<class>/ folders")
    return ImageFolder(str(folder), transform=to_unit_tensor)


def raw_source_names() -> List[str]:
    """What `raw_images` reads: every registered data set and the `RAW_SOURCES`, sorted."""
    return sorted(set(RAW_SOURCES) | set(dataset_names()))


def raw_images(dataset: str, data_root: str, split: str) -> Dataset:
    """The split's images in [0, 1] (ToTensor only), in data-set order; items `(image, target, ...)`.
    ``dataset``: a registered data set (split ``train`` or ``test``) or a `RAW_SOURCES` entry."""
    if dataset in RAW_SOURCES:
        return RAW_SOURCES[dataset](data_root, split)
    if dataset in dataset_names():
        return _bundle_split(dataset, data_root, split)
    raise ValueError(f"unknown data set {dataset!r} for image PIs; choose one of: {', '.join(raw_source_names())}")


# ----------------------------------------------------------------------------------------------------
# Writing the cache
# ----------------------------------------------------------------------------------------------------

def _compute_chunk(args: Tuple[int, np.ndarray, Dict]) -> Tuple[int, np.ndarray]:
    """Worker: (chunk id, images [k, C, H, W] in [0, 1], params dict) -> (chunk id, PIs float32)."""
    chunk_id, images, params = args
    return chunk_id, image_pis(images, ImagePIParams.from_dict(params))


def _read_manifest(folder: Path) -> Optional[Dict]:
    path = folder / "manifest.yaml"
    if not path.is_file():
        return None
    data = read_yaml(path, "image-PI manifest", f"delete {folder} and regenerate it")
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a valid image-PI manifest; delete {folder} and regenerate")
    return data


def _manifest_layout(manifest: Dict) -> str:
    """The layout a manifest records (manifests written before layouts existed hold the old "gudhi")."""
    params = manifest.get("params") or {}
    return str(manifest.get("layout") or params.get("layout") or "gudhi")


def _load_chunk(source: Dataset, start: int, stop: int) -> Tuple[np.ndarray, np.ndarray]:
    items = [source[i] for i in range(start, stop)]
    images = np.stack([np.asarray(to_unit_tensor(it[0]), dtype=np.float32) for it in items])
    targets = np.asarray([int(it[1]) for it in items], dtype=np.int64)
    return images, targets


def build_pi_cache(source: Dataset, folder, dataset: str, split: str,
                   params: ImagePIParams = ImagePIParams(), workers: int = 1, chunk_size: int = 512,
                   dtype: str = "uint8", overwrite: bool = False,
                   progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Compute the PIs of every item of `source` (items `(image [C, H, W] in [0, 1], target, ...)`).

    Resumable: chunks marked in `done.npy` are skipped when the folder holds a cache of the same
    dataset/split/count/parameters/dtype/chunk size; another cache there raises ValueError unless
    `overwrite`. `progress(done_chunks, total_chunks)` is called after every chunk. Returns the folder.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "uint8" and params.quantize != "uint8":
        raise ValueError("dtype uint8 stores 8-bit PIs only: use quantize 'uint8' or dtype float16/float32")
    chunk_size, workers = int(chunk_size), int(workers)
    if chunk_size < 1 or workers < 1:
        raise ValueError(f"chunk_size and workers must be >= 1, got {chunk_size} and {workers}")
    folder = Path(folder)
    count = len(source)
    if count == 0:
        raise ValueError(f"data set {dataset!r} split {split!r} is empty; nothing to cache")
    first = to_unit_tensor(source[0][0])
    channels, height, width = first.shape
    res = params.resolution
    manifest = {
        "version": CACHE_VERSION, "kind": "tgd_image_pi", "dataset": dataset, "split": split,
        "count": count, "image_shape": [channels, height, width], "pi_shape": [2 * channels, res, res],
        "channel_order": "rows of channels 0..C-1, then columns of channels 0..C-1",
        "dtype": dtype, "chunk_size": chunk_size, "layout": params.layout, "params": params.to_dict(),
        "complete": False,
    }
    num_chunks = -(-count // chunk_size)
    old = _read_manifest(folder)
    resume = False
    if old is not None and not overwrite:
        old_layout = _manifest_layout(old)
        if old_layout != params.layout:
            raise ValueError(f"{folder} holds image PIs of layout {old_layout!r}, this run makes {params.layout!r}; "
                             "layouts never mix in one cache: pass --overwrite to replace it or choose another --out")
        same = {k: v for k, v in old.items() if k != "complete"} == {k: v for k, v in manifest.items() if k != "complete"}
        if not same:
            raise ValueError(f"{folder} already holds an image-PI cache made with other settings; "
                             "pass --overwrite to replace it or choose another --out")
        resume = (folder / "pi.npy").is_file() and (folder / "done.npy").is_file()
    folder.mkdir(parents=True, exist_ok=True)
    if resume:
        pis = np.load(folder / "pi.npy", mmap_mode="r+")
        targets = np.load(folder / "targets.npy", mmap_mode="r+")
        done = np.load(folder / "done.npy")
        if pis.shape != (count, 2 * channels, res, res) or len(done) != num_chunks:
            raise ValueError(f"{folder} holds a damaged image-PI cache; pass --overwrite to rebuild it")
    else:
        write_yaml(folder / "manifest.yaml", manifest)
        pis = np.lib.format.open_memmap(folder / "pi.npy", mode="w+", dtype=dtype,
                                        shape=(count, 2 * channels, res, res))
        targets = np.lib.format.open_memmap(folder / "targets.npy", mode="w+", dtype=np.int64, shape=(count,))
        done = np.zeros(num_chunks, dtype=bool)
        save_npy(folder / "done.npy", done)
    todo = [c for c in range(num_chunks) if not done[c]]

    def jobs():
        for c in todo:
            start, stop = c * chunk_size, min(count, (c + 1) * chunk_size)
            images, tg = _load_chunk(source, start, stop)
            targets[start:stop] = tg
            yield c, images, params.to_dict()

    def record(c: int, result: np.ndarray) -> None:
        start = c * chunk_size
        pis[start:start + len(result)] = to_uint8(result) if dtype == "uint8" else result.astype(dtype)
        pis.flush()
        targets.flush()
        done[c] = True
        save_npy(folder / "done.npy", done)
        if progress is not None:
            progress(int(done.sum()), num_chunks)

    if workers == 1:
        for job in jobs():
            record(*_compute_chunk(job))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            pending = []  # at most 2 chunks per worker in flight: bounded memory
            for job in jobs():
                pending.append(pool.apply_async(_compute_chunk, (job,)))
                while len(pending) >= 2 * workers:
                    record(*pending.pop(0).get())
            for handle in pending:
                record(*handle.get())
    del pis, targets
    manifest["complete"] = True
    write_yaml(folder / "manifest.yaml", manifest)
    return folder


# ----------------------------------------------------------------------------------------------------
# Reading the cache
# ----------------------------------------------------------------------------------------------------

class PICache:
    """A finished cache, opened read-only and lazily (safe to pickle into DataLoader workers).

    `pi(i)` -> float32 tensor `[2C, R, R]`; `targets` int64 `[N]`; `manifest` the YAML dict.
    """

    def __init__(self, folder, manifest: Dict):
        self.folder = Path(folder)
        self.manifest = manifest
        self.count = int(manifest["count"])
        self.params = ImagePIParams.from_dict(manifest["params"])
        self.targets = np.load(self.folder / "targets.npy")
        self._pis = None

    def __len__(self) -> int:
        return self.count

    @property
    def pis(self) -> np.ndarray:
        """The `[N, 2C, R, R]` memory map."""
        if self._pis is None:
            self._pis = np.load(self.folder / "pi.npy", mmap_mode="r")
        return self._pis

    def pi(self, index: int) -> torch.Tensor:
        """float32 `[2C, R, R]` in [0, 1] (uint8 caches: level / 255, what TGD's loader reads)."""
        if not 0 <= index < self.count:
            raise ValueError(f"index {index} outside the image-PI cache {self.folder} of {self.count} items; "
                             "the cache was made for another data set or split")
        pi = np.array(self.pis[index], dtype=np.float32)  # a writable copy
        if self.pis.dtype == np.uint8:
            pi /= 255.0
        return torch.from_numpy(pi)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pis"] = None
        return state


def load_pi_cache(folder, params: Optional[ImagePIParams] = ImagePIParams(), count: Optional[int] = None,
                  dataset: Optional[str] = None, split: Optional[str] = None) -> PICache:
    """Open a finished cache and check it: parameters equal `params` (None: accept any), item count
    equals `count`, and the dataset/split names when given. Clear errors otherwise."""
    folder = Path(folder)
    name = folder.name
    ds, _, sp = name.rpartition("_")
    hint = MAKE_HINT.format(dataset=dataset or ds or "NAME", split=split or sp or "SPLIT", root=folder.parent)
    manifest = _read_manifest(folder)
    if manifest is None or not (folder / "pi.npy").is_file() or not (folder / "targets.npy").is_file():
        raise FileNotFoundError(f"no image-PI cache at {folder}; make it with: {hint}")
    if manifest.get("kind") != "tgd_image_pi" or manifest.get("version") != CACHE_VERSION:
        raise ValueError(f"{folder} is not an image-PI cache of format version {CACHE_VERSION}; regenerate it with: {hint}")
    if not manifest.get("complete", False):
        raise ValueError(f"image-PI cache at {folder} is incomplete; rerun the same command to resume: {hint}")
    if params is not None:
        stored = ImagePIParams.from_dict(manifest["params"])
        if _manifest_layout(manifest) != params.layout:
            raise ValueError(f"image-PI cache at {folder} holds layout {_manifest_layout(manifest)!r} but layout "
                             f"{params.layout!r} is asked (layouts never mix); regenerate it with: {hint} --overwrite")
        if stored != params:
            diff = [f"{k}: {a} in cache vs {b} asked" for (k, a), b in
                    zip(stored.to_dict().items(), params.to_dict().values()) if a != b]
            raise ValueError(f"image-PI cache at {folder} was made with other parameters ({'; '.join(diff)}); "
                             f"regenerate it with: {hint} --overwrite")
    for key, want in (("dataset", dataset), ("split", split), ("count", count)):
        if want is not None and manifest.get(key) != want:
            raise ValueError(f"image-PI cache at {folder} has {key} {manifest.get(key)!r}, expected {want!r}; "
                             f"regenerate it with: {hint} --overwrite")
    return PICache(folder, manifest)


class WithImagePI(Dataset):
    """Wraps a data set of `(image, target, index)` items (its usual transforms) and appends the cached
    PI of the un-augmented image `index`: items `(image, target, index, pi [2C, R, R] float32)`.

    The cache's stored target must equal the item's target (catches a cache of another data set).
    """

    def __init__(self, base: Dataset, cache: PICache):
        if len(base) > len(cache):
            raise ValueError(f"data set has {len(base)} items but the image-PI cache {cache.folder} only "
                             f"{len(cache)}; the cache was made for another data set or split")
        self.base = base
        self.cache = cache

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, target, index = self.base[i][:3]
        if int(self.cache.targets[index]) != int(target):
            raise ValueError(f"item {index}: target {target} but the image-PI cache {self.cache.folder} says "
                             f"{int(self.cache.targets[index])}; the cache was made from other data")
        return image, target, index, self.cache.pi(int(index))


class PIImages(Dataset):
    """The cached PIs alone, for training the PI teacher: items `(pi [2C, R, R], target, index)`."""

    def __init__(self, cache: PICache, indices: Optional[Sequence[int]] = None,
                 transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.cache = cache
        self.targets = [int(t) for t in cache.targets]
        self.indices = None if indices is None else [int(i) for i in indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.cache) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int):
        index = i if self.indices is None else self.indices[i]
        pi = self.cache.pi(index)
        if self.transform is not None:
            pi = self.transform(pi)
        return pi, self.targets[index], index


def _pi_cache_pair(cache_root, dataset: str, params: ImagePIParams, counts: Tuple[Optional[int], Optional[int]],
                   test_split: str = "test") -> Tuple[PICache, PICache]:
    train = load_pi_cache(cache_folder(cache_root, dataset, "train"), params, counts[0], dataset, "train")
    test = load_pi_cache(cache_folder(cache_root, dataset, test_split), params, counts[1], dataset, test_split)
    if _manifest_layout(train.manifest) != _manifest_layout(test.manifest):
        raise ValueError(f"image-PI caches of {dataset!r} mix layouts ({_manifest_layout(train.manifest)!r} for train, "
                         f"{_manifest_layout(test.manifest)!r} for {test_split}); regenerate one with the other's layout")
    return train, test


def attach_image_pis(bundle: DataBundle, cache_root, params: ImagePIParams = ImagePIParams(),
                     dataset: Optional[str] = None, test_split: str = "test") -> DataBundle:
    """A copy of `bundle` whose train/val/test items carry the cached PI: `(image, target, index, pi)`.

    val (drawn from the training data) uses the train cache. Count and parameters are checked.
    """
    dataset = dataset or bundle.name
    train_n = _full_len(bundle.train)
    train_c, test_c = _pi_cache_pair(cache_root, dataset, params, (train_n, len(bundle.test)), test_split)
    return replace(bundle, train=WithImagePI(bundle.train, train_c),
                   val=None if bundle.val is None else WithImagePI(bundle.val, train_c),
                   test=WithImagePI(bundle.test, test_c), fields=tuple(bundle.fields[:3]) + ("pi",))


def pi_bundle(cache_root, dataset: str, num_classes: int, params: ImagePIParams = ImagePIParams(),
              val_split: float = 0.0, seed: int = 0, test_split: str = "test") -> DataBundle:
    """A `DataBundle` of cached PIs for the PI teacher: items `(pi, target, index)`, `in_channels` 2C,
    `image_size` R, mean 0 / std 1 (PIs are already in [0, 1]). val: a held-out part of train."""
    train_c, test_c = _pi_cache_pair(cache_root, dataset, params, (None, None), test_split)
    train_full = PIImages(train_c)
    train, val = hold_out(train_full, train_full, train_full.targets, val_split, seed)
    channels = int(train_c.manifest["pi_shape"][0])
    return DataBundle(train=train, val=val, test=PIImages(test_c), num_classes=int(num_classes),
                      in_channels=channels, image_size=train_c.params.resolution, name=f"{dataset}_pi",
                      mean=(0.0,) * channels, std=(1.0,) * channels)


def _full_len(ds: Dataset) -> int:
    return len(ds.dataset) if isinstance(ds, torch.utils.data.Subset) else len(ds)
