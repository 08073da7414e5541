"""TGD's image persistence images: an on-disk cache for a whole split, and the data sets that serve it.

Cache folder layout (one per data set and split, `<cache_root>/<dataset>_<split>/`), format 2:

- `pi.npy`       `[N, 2C, R, R]` uint8 (levels k of k / 255: the official PNG values, for PIs quantised
                 to 8 bits, the default), float16 or float32, row i = item i; read as a read-only memory map;
- `targets.npy`  `[N]` int64, the class of item i (so the PI teacher needs no image data);
- `manifest.yaml` format version, dataset, split, count, channels, dtype, chunk size, the image
  `layout` ("persim", the official one, or the old "gudhi"), the `ImagePIParams`, `complete`, the size
  and SHA-256 of both files (`files`), the command that made it (`command`) and `checksum`, the SHA-256 of
  all its other fields (`topkd_io.checksums.seal`);
- while it is being built: `parts/chunk_<c>.npz` (`pi`, `targets` of chunk c), each recorded in the
  manifest's `chunks` with its size and SHA-256 when written.

Writing never grows a file through a writable memory map (a full disk then raises a one-line error
instead of killing the process with SIGBUS): each chunk is an atomically written file, and the finished
chunks are streamed into `pi.npy` / `targets.npy` with sequential writes, then removed. A rerun of the
same command resumes chunk by chunk (each recorded chunk verified, damaged or missing ones recomputed);
a finished cache whose files fail their records is recomputed. Readers (`load_pi_cache`) check the
manifest's checksum and both files' size and SHA-256 once per process (`--no_verify`: sizes only; about
0.7 s per 750 MB, a CIFAR-10 training split, at the ~1 GB/s SHA-256 of one core); damage is reported
naming the file and the command that rebuilds it.

A cache holds one layout; reading it for another layout (or resuming it with another) is refused. Training
stages demand the default parameters unless told to take a cache as it is (`--pi_cache`).

PIs are computed from the un-normalized image in [0, 1] (ToTensor only, no augmentation), by
`topology.image_pi.image_pis`, in parallel over chunks.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

from topkd_io import AtomicNpyWriter, DamagedFileError, read_yaml, save_npz, write_yaml
from topkd_io.checksums import check_seal, file_record, pinned_command, seal, verify_file_once
from topkd_io.safe_load import load_npy as read_npy
from topology.image_pi import ImagePIParams, image_pis, to_uint8

from .bundle import DataBundle
from .registry import build_datasets, dataset_names
from .splits import hold_out, with_transform
from .transforms import INPUT_NORMS, TGD_PI_MEAN, TGD_PI_STD

CACHE_VERSION = 2
# The recipe the PI teacher trains with (train_teacher.py --input pi): TGD's.
PI_RECIPE = "tgd"
DTYPES = ("uint8", "float16", "float32")
PI_FILE, TARGETS_FILE, PARTS = "pi.npy", "targets.npy", "parts"
DONE_FILE = "done.npy"  # format 1's chunk list, removed when such a folder is rebuilt
# manifest fields that record progress and checks, not the content's settings
RECORD_FIELDS = ("chunks", "files", "complete", "checksum", "command")
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


def _read_manifest(folder: Path, check: bool = True) -> Optional[Dict]:
    """The folder's manifest (None when absent); ``check``: its own checksum too (format 2 on)."""
    path = folder / "manifest.yaml"
    if not path.is_file():
        return None
    data = read_yaml(path, "image-PI manifest", f"delete {folder} and regenerate it")
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a valid image-PI manifest; delete {folder} and regenerate")
    if check and data.get("version") == CACHE_VERSION:
        check_seal(data, path, rebuild_command(folder, data))
    return data


def _manifest_layout(manifest: Dict) -> str:
    """The layout a manifest records (manifests written before layouts existed hold the old "gudhi")."""
    params = manifest.get("params") or {}
    return str(manifest.get("layout") or params.get("layout") or "gudhi")


def rebuild_command(folder, manifest: Optional[Dict] = None) -> str:
    """The command that (re)builds the cache ``folder``: the recorded one, else the generic line."""
    command = (manifest or {}).get("command")
    folder = Path(folder)
    if isinstance(command, str) and command.strip():
        return pinned_command(command, "--out", folder.parent)
    ds, _, sp = folder.name.rpartition("_")
    return MAKE_HINT.format(dataset=(manifest or {}).get("dataset") or ds or "NAME",
                            split=(manifest or {}).get("split") or sp or "SPLIT", root=folder.parent)


def _load_chunk(source: Dataset, start: int, stop: int) -> Tuple[np.ndarray, np.ndarray]:
    items = [source[i] for i in range(start, stop)]
    images = np.stack([np.asarray(to_unit_tensor(it[0]), dtype=np.float32) for it in items])
    targets = np.asarray([int(it[1]) for it in items], dtype=np.int64)
    return images, targets


def chunk_name(c: int) -> str:
    return f"{PARTS}/chunk_{c:05d}.npz"


def _settings(manifest: Dict) -> Dict:
    """The fields of a manifest that decide its content (what a resumed run must share)."""
    return {k: v for k, v in manifest.items() if k not in RECORD_FIELDS}


def _chunk_ok(folder: Path, c: int, record: Optional[Dict], rows: int, shape: Tuple[int, ...]) -> Optional[str]:
    """Why the finished chunk file ``c`` is unusable (missing, other size or SHA-256, other shape), or None."""
    path = folder / chunk_name(c)
    if not record:
        return f"{chunk_name(c)} is not recorded"
    try:
        verify_file_once(path, record)
        with np.load(path, allow_pickle=False) as data:
            if data["pi"].shape != (rows, *shape) or data["targets"].shape != (rows,):
                return f"{chunk_name(c)} holds {data['pi'].shape}, expected {(rows, *shape)}"
    except (ValueError, OSError, KeyError) as exc:  # DamagedFileError is a ValueError
        return " ".join(str(exc).split(";")[0].split())
    return None


def _assemble(folder: Path, manifest: Dict, num_chunks: int, chunk_size: int) -> Dict:
    """Stream the chunk files, in order, into ``pi.npy`` and ``targets.npy`` (sequential writes through
    `topkd_io.AtomicNpyWriter`, renamed when complete) -> the records of both files."""
    count, dtype = int(manifest["count"]), manifest["dtype"]
    pi_w = AtomicNpyWriter(str(folder / PI_FILE), (count, *manifest["pi_shape"]), dtype)
    tg_w = AtomicNpyWriter(str(folder / TARGETS_FILE), (count,), np.int64)
    try:
        for c in range(num_chunks):
            with np.load(folder / chunk_name(c), allow_pickle=False) as data:
                pi_w.write(data["pi"])
                tg_w.write(data["targets"])
        pi_w.commit()
        tg_w.commit()
    except BaseException:
        pi_w.abort()
        tg_w.abort()
        raise
    return {name: file_record(folder / name) for name in (PI_FILE, TARGETS_FILE)}


def build_pi_cache(source: Dataset, folder, dataset: str, split: str,
                   params: ImagePIParams = ImagePIParams(), workers: int = 1, chunk_size: int = 512,
                   dtype: str = "uint8", overwrite: bool = False,
                   progress: Optional[Callable[[int, int], None]] = None, command: Optional[str] = None,
                   log: Callable[[str], None] = print) -> Path:
    """Compute the PIs of every item of `source` (items `(image [C, H, W] in [0, 1], target, ...)`).

    Each chunk of `chunk_size` items is written as its own file `parts/chunk_<c>.npz` (atomically) and
    recorded in the manifest with its size and SHA-256; when all are there, they are streamed into `pi.npy`
    and `targets.npy` (recorded the same way) and the parts are removed. No file is ever grown through a
    writable memory map. A rerun of the same settings resumes: recorded chunks that are intact are kept,
    missing or damaged ones (and a damaged finished cache) are recomputed. Another cache in the folder raises
    ValueError unless `overwrite`. `progress(done_chunks, total_chunks)` is called after every chunk;
    `command` (the generating command line) is recorded for the readers' rebuild hints. Returns the folder.
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
    pi_shape = (2 * channels, res, res)
    manifest = {
        "version": CACHE_VERSION, "kind": "tgd_image_pi", "dataset": dataset, "split": split,
        "count": count, "image_shape": [channels, height, width], "pi_shape": list(pi_shape),
        "channel_order": "rows of channels 0..C-1, then columns of channels 0..C-1",
        "dtype": dtype, "chunk_size": chunk_size, "layout": params.layout, "params": params.to_dict(),
        "chunks": {}, "files": {}, "complete": False,
    }
    if command:
        manifest["command"] = command
    num_chunks = -(-count // chunk_size)
    old = None if overwrite else _read_manifest(folder, check=False)
    if old is not None:
        old_layout = _manifest_layout(old)
        if old_layout != params.layout:
            raise ValueError(f"{folder} holds image PIs of layout {old_layout!r}, this run makes {params.layout!r}; "
                             "layouts never mix in one cache: pass --overwrite to replace it or choose another --out")
        if old.get("version") != CACHE_VERSION:
            raise ValueError(f"{folder} holds an image-PI cache of an older format (version {old.get('version')}, "
                             f"no checksums); pass --overwrite to rebuild it")
        if _settings(old) != _settings(manifest):
            raise ValueError(f"{folder} already holds an image-PI cache made with other settings; "
                             "pass --overwrite to replace it or choose another --out")
        try:
            check_seal(old, folder / "manifest.yaml")
        except DamagedFileError as exc:
            log(f"image PIs: {exc}; starting {folder} afresh")
            old = None
    problems: List[str] = []
    if old is not None and old.get("complete"):
        for name in (PI_FILE, TARGETS_FILE):
            try:
                verify_file_once(folder / name, (old.get("files") or {}).get(name) or {"size": -1})
            except DamagedFileError as exc:
                problems.append(" ".join(str(exc).split(";")[0].split()))
        if not problems:
            shutil.rmtree(folder / PARTS, ignore_errors=True)  # left when a run stopped right after merging
            log(f"image PIs: {folder} is complete and its files match their SHA-256 records; nothing to do")
            return folder
        old = None  # the parts are gone once a cache is finished: it is recomputed from the images
    done: Dict[int, Dict] = {}
    if old is not None:
        for key, record in (old.get("chunks") or {}).items():
            c = int(key)
            rows = min(count, (c + 1) * chunk_size) - c * chunk_size
            problem = _chunk_ok(folder, c, record, rows, pi_shape) if 0 <= c < num_chunks else "out of range"
            if problem:
                problems.append(problem)
            else:
                done[c] = record
    if problems:
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        log(f"image PIs: rebuilding in {folder}: {shown}")
    if old is None and folder.exists():  # a fresh start: nothing of an earlier cache is trusted or kept
        for name in (PI_FILE, TARGETS_FILE, DONE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        shutil.rmtree(folder / PARTS, ignore_errors=True)
    (folder / PARTS).mkdir(parents=True, exist_ok=True)
    manifest["chunks"] = {c: done[c] for c in sorted(done)}
    write_yaml(folder / "manifest.yaml", seal(manifest))
    todo = [c for c in range(num_chunks) if c not in done]

    def jobs():
        for c in todo:
            start, stop = c * chunk_size, min(count, (c + 1) * chunk_size)
            images, tg = _load_chunk(source, start, stop)
            targets_of[c] = tg
            yield c, images, params.to_dict()

    targets_of: Dict[int, np.ndarray] = {}

    def record(c: int, result: np.ndarray) -> None:
        stored = to_uint8(result) if dtype == "uint8" else result.astype(dtype)
        path = folder / chunk_name(c)
        save_npz(path, pi=stored, targets=targets_of.pop(c))
        manifest["chunks"][c] = file_record(path)
        manifest["chunks"] = {k: manifest["chunks"][k] for k in sorted(manifest["chunks"])}
        write_yaml(folder / "manifest.yaml", seal(manifest))
        if progress is not None:
            progress(len(manifest["chunks"]), num_chunks)

    if workers == 1:
        for job in jobs():
            record(*_compute_chunk(job))
    else:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            pending = []  # at most 2 chunks per worker in flight: bounded memory
            for job in jobs():
                pending.append(pool.apply_async(_compute_chunk, (job,)))
                while len(pending) >= 2 * workers:
                    record(*pending.pop(0).get())
            for handle in pending:
                record(*handle.get())
    manifest["files"] = _assemble(folder, manifest, num_chunks, chunk_size)
    manifest["complete"] = True
    manifest["chunks"] = {}  # the parts are merged: the finished files carry the records
    write_yaml(folder / "manifest.yaml", seal(manifest))
    shutil.rmtree(folder / PARTS, ignore_errors=True)
    return folder


# ----------------------------------------------------------------------------------------------------
# Reading the cache
# ----------------------------------------------------------------------------------------------------

class PICache:
    """A finished, verified cache, opened read-only and lazily (safe to pickle into DataLoader workers).

    `pi(i)` -> float32 tensor `[2C, R, R]` (level / 255 for uint8 caches, then `(x - mean) / std` per
    channel when `normalize` is given: TGD's loader constants, `datasets.transforms.TGD_PI_MEAN`);
    `targets` int64 `[N]`; `manifest` the YAML dict; `pis` the raw `[N, 2C, R, R]` read-only memory map.
    """

    def __init__(self, folder, manifest: Dict, normalize: Optional[Tuple[Sequence[float], Sequence[float]]] = None):
        self.folder = Path(folder)
        self.manifest = manifest
        self.count = int(manifest["count"])
        self.params = ImagePIParams.from_dict(manifest["params"])
        self.rebuild = rebuild_command(self.folder, manifest)
        self.targets = read_npy(self.folder / TARGETS_FILE, "image-PI targets", self.rebuild, mmap=False)
        self.normalize = None
        if normalize is not None:
            mean, std = (tuple(float(v) for v in x) for x in normalize)
            channels = int(manifest["pi_shape"][0])
            if len(mean) != channels or len(std) != channels:
                raise ValueError(f"image-PI cache {self.folder} has {channels} channels, the PI normalisation "
                                 f"{len(mean)}; pass --input_norm dataset (raw PIs)")
            self.normalize = (mean, std)
        self._pis = None

    def __len__(self) -> int:
        return self.count

    @property
    def pis(self) -> np.ndarray:
        """The `[N, 2C, R, R]` read-only memory map (size checked when the cache was opened)."""
        if self._pis is None:
            self._pis = read_npy(self.folder / PI_FILE, "image-PI file", self.rebuild)
        return self._pis

    def as_input(self, pi: torch.Tensor) -> torch.Tensor:
        """float PIs `[..., 2C, R, R]` in [0, 1] -> what the networks see (normalised when asked)."""
        if self.normalize is None:
            return pi
        mean, std = (torch.as_tensor(v, dtype=pi.dtype, device=pi.device).view(-1, 1, 1) for v in self.normalize)
        return (pi - mean) / std

    def pi(self, index: int) -> torch.Tensor:
        """float32 `[2C, R, R]` (uint8 caches: level / 255, what TGD's loader reads; see `as_input`)."""
        if not 0 <= index < self.count:
            raise ValueError(f"index {index} outside the image-PI cache {self.folder} of {self.count} items; "
                             "the cache was made for another data set or split")
        pi = np.array(self.pis[index], dtype=np.float32)  # a writable copy
        if self.pis.dtype == np.uint8:
            pi /= 255.0
        return self.as_input(torch.from_numpy(pi))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pis"] = None
        return state


def load_pi_cache(folder, params: Optional[ImagePIParams] = ImagePIParams(), count: Optional[int] = None,
                  dataset: Optional[str] = None, split: Optional[str] = None, verify: bool = True,
                  normalize=None, log: Callable[[str], None] = print, other_hint: str = "") -> PICache:
    """Open a finished cache and check it: its manifest's own checksum, the size and (unless `verify` is
    False) SHA-256 of `pi.npy` and `targets.npy` (hashed once per process), parameters equal `params`
    (None: accept the cache's own), item count equal `count`, and the dataset/split names when given.
    Errors name the folder and the command that rebuilds it. `normalize`: see `PICache`."""
    folder = Path(folder)
    hint = MAKE_HINT.format(dataset=dataset or folder.name.rpartition("_")[0] or "NAME",
                            split=split or folder.name.rpartition("_")[2] or "SPLIT", root=folder.parent)
    manifest = _read_manifest(folder, check=False)
    if manifest is None:
        raise FileNotFoundError(f"no image-PI cache at {folder}; make it with: {hint}")
    hint = rebuild_command(folder, manifest)
    if manifest.get("kind") != "tgd_image_pi" or manifest.get("version") != CACHE_VERSION:
        raise ValueError(f"{folder} is not an image-PI cache of format version {CACHE_VERSION} (older caches have "
                         f"no checksums); rebuild it with: {hint} --overwrite")
    check_seal(manifest, folder / "manifest.yaml", hint)
    if not manifest.get("complete", False):
        raise ValueError(f"image-PI cache at {folder} is incomplete; rerun the same command to resume: {hint}")
    if params is not None:
        stored = ImagePIParams.from_dict(manifest["params"])
        if _manifest_layout(manifest) != params.layout:
            raise ValueError(f"image-PI cache at {folder} holds layout {_manifest_layout(manifest)!r} but layout "
                             f"{params.layout!r} is asked (layouts never mix){other_hint}; or regenerate it with: "
                             f"{hint} --overwrite")
        if stored != params:
            diff = [f"{k}: {a} in cache vs {b} asked" for (k, a), b in
                    zip(stored.to_dict().items(), params.to_dict().values()) if a != b]
            raise ValueError(f"image-PI cache at {folder} was made with other parameters ({'; '.join(diff)})"
                             f"{other_hint}; or regenerate it with: {hint} --overwrite")
    for key, want in (("dataset", dataset), ("split", split), ("count", count)):
        if want is not None and manifest.get(key) != want:
            raise ValueError(f"image-PI cache at {folder} has {key} {manifest.get(key)!r}, expected {want!r}; "
                             f"regenerate it with: {hint} --overwrite")
    files = manifest.get("files") or {}
    t0, hashed = time.perf_counter(), 0
    for name in (PI_FILE, TARGETS_FILE):
        record = files.get(name)
        if not record:
            raise DamagedFileError(f"{folder / name} is not recorded in {folder / 'manifest.yaml'}; rebuild it "
                                   f"with: {hint}")
        if verify_file_once(folder / name, record, hint, check_hash=verify):
            hashed += int(record["size"])
    if not verify:
        log(f"--no_verify: the SHA-256 of the image-PI cache {folder} is not checked (sizes and the manifest's "
            f"own checksum are)")
    elif hashed:
        log(f"verified image-PI cache {folder}: {hashed / 2**20:.1f} MiB in {time.perf_counter() - t0:.2f} s")
    return PICache(folder, manifest, normalize)


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


def pi_normalization(input_norm: str, channels: int):
    """``(mean, std)`` per PI channel for ``--input_norm`` (``tgd``: TGD's loader constants, 6 channels), or
    None (``dataset``: the raw PIs in [0, 1], level / 255 for uint8 caches)."""
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"--input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
    if input_norm == "dataset":
        return None
    if channels != len(TGD_PI_MEAN):
        raise ValueError(f"--input_norm tgd: TGD's loader constants are for the {len(TGD_PI_MEAN)} PI channels of RGB "
                         f"images, this cache has {channels}; pass --input_norm dataset")
    return TGD_PI_MEAN, TGD_PI_STD


def pi_cache_folders(pi_cache, dataset: str, test_split: str = "test") -> Tuple[Path, Path]:
    """``--pi_cache``: one split's cache folder (``<name>_<split>/``, the other split beside it) or a root
    holding ``<dataset>_train`` and ``<dataset>_<test_split>`` -> (train folder, test folder)."""
    path = Path(pi_cache)
    if (path / "manifest.yaml").is_file():
        name = path.name.rpartition("_")[0]
        if not name:
            raise ValueError(f"--pi_cache {path}: a cache folder is named <name>_<split> (as generate_image_PI.py "
                             f"writes it), e.g. {dataset}_train")
        return path.parent / f"{name}_train", path.parent / f"{name}_{test_split}"
    if not path.is_dir():
        raise FileNotFoundError(f"--pi_cache {path} not found; pass a cache folder written by generate_image_PI.py "
                                f"(<out>/<name>_train) or its --out root")
    return cache_folder(path, dataset, "train"), cache_folder(path, dataset, test_split)


def pi_cache_inputs(cache_root, pi_cache, dataset: str, must_exist: bool = True,
                    test_split: str = "test") -> Dict[str, str]:
    """The train and test cache folders a run reads (``--pi_cache``, else ``<cache_root>/<dataset>_<split>``) as
    input files of its identity, ``{"pi_cache": train, "pi_cache_test": test}`` (a folder stands for its sealed
    manifest). A missing one: FileNotFoundError with the command that makes it, or (not ``must_exist``) left
    to the identity as pending."""
    if pi_cache is not None and (must_exist or Path(pi_cache).exists()):
        folders = pi_cache_folders(pi_cache, dataset, test_split)
    else:
        root = cache_root if pi_cache is None else pi_cache
        folders = (cache_folder(root, dataset, "train"), cache_folder(root, dataset, test_split))
    for folder, split in zip(folders, ("train", test_split)):
        if must_exist and not (folder / "manifest.yaml").is_file():
            raise FileNotFoundError(f"no image-PI cache at {folder}; make it with: "
                                    + MAKE_HINT.format(dataset=dataset, split=split, root=folder.parent))
    return {"pi_cache": str(folders[0]), "pi_cache_test": str(folders[1])}


def _pi_cache_pair(cache_root, dataset: str, params: Optional[ImagePIParams],
                   counts: Tuple[Optional[int], Optional[int]], test_split: str = "test", pi_cache=None,
                   verify: bool = True, input_norm: str = "dataset") -> Tuple[PICache, PICache]:
    """The train and test caches. Under ``cache_root`` their parameters must equal ``params`` (the
    defaults); a ``pi_cache`` is taken with its own parameters (both splits must share them)."""
    if pi_cache is not None:
        folders, params, other = pi_cache_folders(pi_cache, dataset, test_split), None, ""
        names = (None, None)
    else:
        folders = (cache_folder(cache_root, dataset, "train"), cache_folder(cache_root, dataset, test_split))
        other = f"; to train on this cache as it is, pass --pi_cache {folders[0]}"
        names = (dataset, dataset)
    loaded = []
    for folder, count, name, split in zip(folders, counts, names, ("train", test_split)):
        manifest = _read_manifest(Path(folder), check=False) or {}
        norm = pi_normalization(input_norm, int((manifest.get("pi_shape") or [6])[0]))
        loaded.append(load_pi_cache(folder, params, count, name, split, verify=verify, normalize=norm,
                                    other_hint=other))
    train, test = loaded
    if _manifest_layout(train.manifest) != _manifest_layout(test.manifest):
        raise ValueError(f"image-PI caches of {dataset!r} mix layouts ({_manifest_layout(train.manifest)!r} for train, "
                         f"{_manifest_layout(test.manifest)!r} for {test_split}); regenerate one with the other's layout")
    if train.params != test.params:
        raise ValueError(f"image-PI caches {train.folder} and {test.folder} were made with other parameters; "
                         f"regenerate one with the other's settings")
    return train, test


def attach_image_pis(bundle: DataBundle, cache_root, params: ImagePIParams = ImagePIParams(),
                     dataset: Optional[str] = None, test_split: str = "test", pi_cache=None, verify: bool = True,
                     input_norm: str = "dataset") -> DataBundle:
    """A copy of `bundle` whose train/val/test items carry the cached PI: `(image, target, index, pi)`.

    val (drawn from the training data) uses the train cache. Count and parameters are checked (see
    `_pi_cache_pair`); ``input_norm`` decides what the PIs are normalised with (`pi_normalization`).
    """
    dataset = dataset or bundle.name
    train_n = _full_len(bundle.train)
    train_c, test_c = _pi_cache_pair(cache_root, dataset, params, (train_n, len(bundle.test)), test_split,
                                     pi_cache, verify, input_norm)
    return replace(bundle, train=WithImagePI(bundle.train, train_c),
                   val=None if bundle.val is None else WithImagePI(bundle.val, train_c),
                   test=WithImagePI(bundle.test, test_c), fields=tuple(bundle.fields[:3]) + ("pi",))


def pi_bundle(cache_root, dataset: str, num_classes: int, params: Optional[ImagePIParams] = ImagePIParams(),
              val_split: float = 0.0, seed: int = 0, test_split: str = "test", pi_cache=None, verify: bool = True,
              input_norm: str = "dataset") -> DataBundle:
    """A `DataBundle` of cached PIs for the PI teacher: items `(pi, target, index)`, `in_channels` 2C,
    `image_size` R; `mean`/`std` the PI normalisation (`input_norm` ``tgd``: TGD's loader constants;
    ``dataset``: 0 / 1, the raw PIs in [0, 1]). val: a held-out part of train."""
    train_c, test_c = _pi_cache_pair(cache_root, dataset, params, (None, None), test_split, pi_cache, verify,
                                     input_norm)
    train_full = PIImages(train_c)
    train, val = hold_out(train_full, train_full, train_full.targets, val_split, seed)
    channels = int(train_c.manifest["pi_shape"][0])
    mean, std = train_c.normalize or ((0.0,) * channels, (1.0,) * channels)
    return DataBundle(train=train, val=val, test=PIImages(test_c), num_classes=int(num_classes),
                      in_channels=channels, image_size=train_c.params.resolution, name=f"{dataset}_pi",
                      mean=tuple(mean), std=tuple(std))


def _full_len(ds: Dataset) -> int:
    return len(ds.dataset) if isinstance(ds, torch.utils.data.Subset) else len(ds)
