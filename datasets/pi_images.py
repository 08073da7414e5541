"""TGD's image persistence images: an on-disk cache for a whole split, and the data sets that serve it.

A cache folder ``<cache_root>/<dataset>_<split>/`` holds ``pi.npy`` (``[N, 2C, R, R]``: uint8 levels k of k / 255,
the official PNG values, or float16/float32; row i = item i), ``targets.npy`` (``[N]`` int64) and a sealed
``manifest.yaml`` (settings, `ImagePIParams`, the command, size and SHA-256 of both files). While it is built, each
chunk is an atomically written ``parts/chunk_<c>.npz`` (a rerun resumes chunk by chunk); the chunks are then
streamed into ``pi.npy`` with plain writes (no writable memory map: a full disk is one line, not a SIGBUS)."""
import logging
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

from topkd_io import AtomicNpyWriter, DamagedFileError, TopKDError, save_npz
from topkd_io import (check_seal, file_record, pinned_command, read_sealed, verify_file_once, verify_files,
                      write_sealed)
from topkd_io import load_npy as read_npy
from topology.image_pi import ImagePIParams, image_pis, to_uint8

from .bundle import DataBundle, hold_out, with_transform
from .registry import build_datasets, dataset_names
from .transforms import INPUT_NORMS, TGD_PI_MEAN, TGD_PI_STD

log = logging.getLogger(__name__)

CACHE_VERSION = 2
PI_RECIPE = "tgd"  # the recipe the PI teacher trains with (train_teacher.py --input pi)
DTYPES = ("uint8", "float16", "float32")
PI_FILE, TARGETS_FILE, PARTS = "pi.npy", "targets.npy", "parts"
RECORD_FIELDS = ("chunks", "files", "complete", "checksum", "command")  # progress and checks, not settings
MAKE_HINT = "python generate_image_PI.py --dataset {dataset} --split {split} --data_root DATA --out {root}"


def cache_folder(cache_root, dataset: str, split: str) -> Path:
    return Path(cache_root) / f"{dataset}_{split}"


def to_unit_tensor(image) -> torch.Tensor:
    """PIL image or float tensor in [0, 1] -> float tensor ``[C, H, W]`` in [0, 1] (ToTensor only)."""
    return image.float() if isinstance(image, torch.Tensor) else TF.to_tensor(image)


def raw_source_names() -> List[str]:
    """What `raw_images` reads: every registered data set, and ``imagefolder``."""
    return sorted({"imagefolder", *dataset_names()})


def raw_images(dataset: str, data_root: str, split: str) -> Dataset:
    """The split's images in [0, 1] (ToTensor only), in data-set order; items ``(image, target, ...)``;
    ``imagefolder``: the tree ``<data_root>/<split>/<class>/<image>``."""
    if dataset == "imagefolder":
        folder = Path(data_root) / split
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} not found; pass --data_root holding {split}/<class>/ "
                                    f"folders")
        return ImageFolder(str(folder), transform=to_unit_tensor)
    if split not in ("train", "test"):
        raise TopKDError(f"split for {dataset!r} must be 'train' or 'test', got {split!r}")
    bundle = build_datasets(dataset, root=data_root, train_augment=False)
    return with_transform(bundle.train if split == "train" else bundle.test, to_unit_tensor)


def _compute_chunk(args: Tuple[int, np.ndarray, Dict]) -> Tuple[int, np.ndarray]:
    """Worker: (chunk id, images [k, C, H, W] in [0, 1], params dict) -> (chunk id, PIs float32)."""
    chunk_id, images, params = args
    return chunk_id, image_pis(images, ImagePIParams.from_dict(params))


def rebuild_command(folder, manifest: Optional[Dict] = None) -> str:
    """The command that (re)builds the cache ``folder``: the recorded one, else the generic line."""
    manifest, folder = manifest or {}, Path(folder)
    if isinstance(manifest.get("command"), str) and manifest["command"].strip():
        return pinned_command(manifest["command"], "--out", folder.parent)
    ds, _, sp = folder.name.rpartition("_")
    return MAKE_HINT.format(dataset=manifest.get("dataset") or ds or "NAME", split=manifest.get("split") or sp or
                            "SPLIT", root=folder.parent)


def _read_manifest(folder: Path) -> Optional[Dict]:
    """The folder's manifest, its checksum not yet tested (None when there is none)."""
    path = folder / "manifest.yaml"
    return read_sealed(path, "image-PI manifest") if path.is_file() else None


def chunk_name(c: int) -> str:
    return f"{PARTS}/chunk_{c:05d}.npz"


def _settings(manifest: Dict) -> Dict:
    """The fields of a manifest that decide its content (what a resumed run must share)."""
    return {k: v for k, v in manifest.items() if k not in RECORD_FIELDS}


def build_pi_cache(source: Dataset, folder, dataset: str, split: str, params: ImagePIParams = ImagePIParams(),
                   workers: int = 1, chunk_size: int = 512, dtype: str = "uint8", overwrite: bool = False,
                   progress: Optional[Callable[[int, int], None]] = None, command: Optional[str] = None) -> Path:
    """Compute the PIs of every item ``(image [C, H, W] in [0, 1], target, ...)`` of ``source`` into ``folder``,
    resuming a cache of the same settings (another one is refused unless ``overwrite``) -> the folder.
    ``progress(done_chunks, total_chunks)`` after every chunk; ``command``: recorded for rebuild hints."""
    if dtype == "uint8" and params.quantize != "uint8":
        raise TopKDError("dtype uint8 stores 8-bit PIs only: use quantize 'uint8' or dtype float16/float32")
    chunk_size, workers, folder, count = int(chunk_size), int(workers), Path(folder), len(source)
    if chunk_size < 1 or workers < 1:
        raise TopKDError(f"chunk_size and workers must be >= 1, got {chunk_size} and {workers}")
    if count == 0:
        raise TopKDError(f"data set {dataset!r} split {split!r} is empty; nothing to cache")
    channels, height, width = to_unit_tensor(source[0][0]).shape
    pi_shape = (2 * channels, params.resolution, params.resolution)
    manifest = {
        "version": CACHE_VERSION, "kind": "tgd_image_pi", "dataset": dataset, "split": split,
        "count": count, "image_shape": [channels, height, width], "pi_shape": list(pi_shape),
        "channel_order": "rows of channels 0..C-1, then columns of channels 0..C-1",
        "dtype": dtype, "chunk_size": chunk_size, "layout": params.layout, "params": params.to_dict(),
        "chunks": {}, "files": {}, "complete": False, **({"command": command} if command else {}),
    }
    num_chunks = -(-count // chunk_size)
    old = None if overwrite else _read_manifest(folder)
    if old is not None and _settings(old) != _settings(manifest):
        mix = f" (layout {old.get('layout')!r}, this run makes {params.layout!r}; layouts never mix in one cache)" \
            if old.get("layout") != params.layout else ""
        raise TopKDError(f"{folder} already holds an image-PI cache made with other settings{mix}; pass --overwrite "
                         f"to replace it or choose another --out")
    problems: List[str] = []
    try:
        if old is not None:
            check_seal(old, folder / "manifest.yaml")
        if old is not None and old.get("complete"):
            verify_files(folder, [(name, (old.get("files") or {}).get(name)) for name in (PI_FILE, TARGETS_FILE)])
            shutil.rmtree(folder / PARTS, ignore_errors=True)  # left when a run stopped right after merging
            log.info(f"image PIs: {folder} is complete and its files match their SHA-256 records; nothing to do")
            return folder
    except DamagedFileError as exc:  # the parts are gone once a cache is finished: recomputed from the images
        problems.append(" ".join(str(exc).split(";")[0].split()))
        old = None
    done: Dict[int, Dict] = {}
    for key, record in ((old or {}).get("chunks") or {}).items():  # keep the chunk files that match their records
        try:
            if not record:
                raise DamagedFileError(f"{chunk_name(int(key))} is not recorded")
            verify_file_once(folder / chunk_name(int(key)), record)
            done[int(key)] = record
        except (ValueError, OSError) as exc:
            problems.append(" ".join(str(exc).split(";")[0].split()))
    if problems:
        log.info(f"image PIs: rebuilding in {folder}: {'; '.join(problems[:3])}"
                 + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
    if old is None and folder.exists():  # a fresh start: nothing of an earlier cache is trusted or kept
        for name in (PI_FILE, TARGETS_FILE):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / PARTS, ignore_errors=True)
    (folder / PARTS).mkdir(parents=True, exist_ok=True)
    manifest["chunks"] = {c: done[c] for c in sorted(done)}
    write_sealed(folder / "manifest.yaml", manifest)
    targets_of: Dict[int, np.ndarray] = {}

    def jobs():
        for c in (c for c in range(num_chunks) if c not in done):
            items = [source[i] for i in range(c * chunk_size, min(count, (c + 1) * chunk_size))]
            targets_of[c] = np.asarray([int(it[1]) for it in items], dtype=np.int64)
            yield c, np.stack([np.asarray(to_unit_tensor(it[0]), dtype=np.float32) for it in items]), \
                params.to_dict()

    def record(c: int, result: np.ndarray) -> None:
        path = folder / chunk_name(c)
        save_npz(path, pi=to_uint8(result) if dtype == "uint8" else result.astype(dtype), targets=targets_of.pop(c))
        manifest["chunks"] = dict(sorted({**manifest["chunks"], c: file_record(path)}.items()))
        write_sealed(folder / "manifest.yaml", manifest)
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
    pi_w = AtomicNpyWriter(str(folder / PI_FILE), (count, *pi_shape), dtype)  # the chunks streamed in order
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
    manifest.update(files={name: file_record(folder / name) for name in (PI_FILE, TARGETS_FILE)}, complete=True,
                    chunks={})
    write_sealed(folder / "manifest.yaml", manifest)
    shutil.rmtree(folder / PARTS, ignore_errors=True)
    return folder


class PICache:
    """A finished, verified cache, opened read-only and lazily (safe to pickle into DataLoader workers): ``pi(i)``
    -> float32 ``[2C, R, R]`` (level / 255 for uint8 caches, then ``(x - mean) / std`` per channel when
    ``normalize`` is given); ``targets`` int64 ``[N]``; ``pis`` the raw ``[N, 2C, R, R]`` read-only memory map."""

    def __init__(self, folder, manifest: Dict, normalize: Optional[Tuple[Sequence[float], Sequence[float]]] = None):
        self.folder, self.manifest = Path(folder), manifest
        self.params = ImagePIParams.from_dict(manifest["params"])
        self.rebuild = rebuild_command(self.folder, manifest)
        self.targets = read_npy(self.folder / TARGETS_FILE, "image-PI targets", self.rebuild, mmap=False)
        self.normalize = None if normalize is None else tuple(tuple(float(v) for v in x) for x in normalize)
        self._pis = None

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def pis(self) -> np.ndarray:
        if self._pis is None:
            self._pis = read_npy(self.folder / PI_FILE, "image-PI file", self.rebuild)
        return self._pis

    def as_input(self, pi: torch.Tensor) -> torch.Tensor:
        """float PIs ``[..., 2C, R, R]`` in [0, 1] -> what the networks see (normalised when asked)."""
        if self.normalize is None:
            return pi
        mean, std = (torch.as_tensor(v, dtype=pi.dtype, device=pi.device).view(-1, 1, 1) for v in self.normalize)
        return (pi - mean) / std

    def pi(self, index: int) -> torch.Tensor:
        pi = np.array(self.pis[index], dtype=np.float32)  # a writable copy
        if self.pis.dtype == np.uint8:
            pi /= 255.0
        return self.as_input(torch.from_numpy(pi))

    def __getstate__(self):
        return {**self.__dict__, "_pis": None}


def load_pi_cache(folder, params: Optional[ImagePIParams] = ImagePIParams(), count: Optional[int] = None,
                  dataset: Optional[str] = None, split: Optional[str] = None, verify: bool = True,
                  input_norm: str = "dataset", other_hint: str = "") -> PICache:
    """Open a finished cache and check it: the manifest's checksum, both files' size and (``verify``) SHA-256, its
    parameters equal to ``params`` (None: the cache's own), its count, data set and split when given."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"no image-PI cache at {folder}; make it with: "
                                f"{rebuild_command(folder, {'dataset': dataset, 'split': split})}")
    hint = rebuild_command(folder, manifest)
    if manifest.get("kind") != "tgd_image_pi" or manifest.get("version") != CACHE_VERSION:
        raise TopKDError(f"{folder} is not an image-PI cache of format version {CACHE_VERSION}; rebuild it with: "
                         f"{hint} --overwrite")
    check_seal(manifest, folder / "manifest.yaml", hint)
    if not manifest.get("complete", False):
        raise TopKDError(f"image-PI cache at {folder} is incomplete; rerun the same command to resume: {hint}")
    stored = ImagePIParams.from_dict(manifest["params"])
    if params is not None and stored != params:
        diff = "; ".join(f"{k}: {a} in cache vs {b} asked" for (k, a), b in
                         zip(stored.to_dict().items(), params.to_dict().values()) if a != b)
        why = f"holds layout {stored.layout!r} but layout {params.layout!r} is asked (layouts never mix)" \
            if stored.layout != params.layout else f"was made with other parameters ({diff})"
        raise TopKDError(f"image-PI cache at {folder} {why}{other_hint}; or regenerate it with: {hint} --overwrite")
    for key, want in (("dataset", dataset), ("split", split), ("count", count)):
        if want is not None and manifest.get(key) != want:
            raise TopKDError(f"image-PI cache at {folder} has {key} {manifest.get(key)!r}, expected {want!r}; "
                             f"regenerate it with: {hint} --overwrite")
    t0, files = time.perf_counter(), manifest.get("files") or {}
    hashed = verify_files(folder, [(name, files.get(name)) for name in (PI_FILE, TARGETS_FILE)], hint, verify)
    if not verify:
        log.info(f"--no_verify: the SHA-256 of the image-PI cache {folder} is not checked (sizes and the manifest's "
                 f"own checksum are)")
    elif hashed:
        log.info(f"verified image-PI cache {folder}: {hashed / 2**20:.1f} MiB in {time.perf_counter() - t0:.2f} s")
    return PICache(folder, manifest, pi_normalization(input_norm, int(manifest["pi_shape"][0])))


class WithImagePI(Dataset):
    """Items ``(image, target, index)`` with the cached PI of the un-augmented image ``index`` appended:
    ``(image, target, index, pi [2C, R, R] float32)``; the cache's target must equal the item's."""

    def __init__(self, base: Dataset, cache: PICache):
        if len(base) > len(cache):
            raise TopKDError(f"data set has {len(base)} items but the image-PI cache {cache.folder} only "
                             f"{len(cache)}; the cache was made for another data set or split")
        self.base, self.cache = base, cache

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, target, index = self.base[i][:3]
        if int(self.cache.targets[index]) != int(target):
            raise TopKDError(f"item {index}: target {target} but the image-PI cache {self.cache.folder} says "
                             f"{int(self.cache.targets[index])}; the cache was made from other data")
        return image, target, index, self.cache.pi(int(index))


class PIImages(Dataset):
    """The cached PIs alone, for training the PI teacher: items ``(pi [2C, R, R], target, index)``."""

    def __init__(self, cache: PICache, transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.cache, self.transform, self.targets = cache, transform, [int(t) for t in cache.targets]

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int):
        pi = self.cache.pi(index)
        return (pi if self.transform is None else self.transform(pi)), self.targets[index], index


def pi_normalization(input_norm: str, channels: int):
    """``(mean, std)`` per PI channel for ``--input_norm tgd`` (TGD's constants, 6 channels); None else."""
    if input_norm not in INPUT_NORMS:
        raise TopKDError(f"--input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
    if input_norm == "dataset":
        return None
    if channels != len(TGD_PI_MEAN):
        raise TopKDError(f"--input_norm tgd: TGD's loader constants are for the {len(TGD_PI_MEAN)} PI channels of "
                         f"RGB images, this cache has {channels}; pass --input_norm dataset")
    return TGD_PI_MEAN, TGD_PI_STD


def pi_cache_folders(cache_root, pi_cache, dataset: str, must_exist: bool = True) -> Tuple[Path, Path]:
    """The (train, test) cache folders a run reads: under ``cache_root``, or ``--pi_cache``: one split's cache
    folder (the other split beside it) or a root holding ``<dataset>_train`` and ``<dataset>_test``."""
    path = Path(cache_root if pi_cache is None else pi_cache)
    if pi_cache is not None and (path / "manifest.yaml").is_file():
        name = path.name.rpartition("_")[0]
        if not name:
            raise TopKDError(f"--pi_cache {path}: a cache folder is named <name>_<split> (as generate_image_PI.py "
                             f"writes it), e.g. {dataset}_train")
        return path.parent / f"{name}_train", path.parent / f"{name}_test"
    if pi_cache is not None and must_exist and not path.is_dir():
        raise FileNotFoundError(f"--pi_cache {path} not found; pass a cache folder written by generate_image_PI.py "
                                f"(<out>/<name>_train) or its --out root")
    return cache_folder(path, dataset, "train"), cache_folder(path, dataset, "test")


def pi_cache_inputs(cache_root, pi_cache, dataset: str, must_exist: bool = True) -> Dict[str, str]:
    """`pi_cache_folders` as inputs of a run's identity; a missing one: FileNotFoundError with the command."""
    folders = pi_cache_folders(cache_root, pi_cache, dataset, must_exist)
    for folder, split in zip(folders, ("train", "test")):
        if must_exist and not (folder / "manifest.yaml").is_file():
            raise FileNotFoundError(f"no image-PI cache at {folder}; make it with: "
                                    + MAKE_HINT.format(dataset=dataset, split=split, root=folder.parent))
    return {"pi_cache": str(folders[0]), "pi_cache_test": str(folders[1])}


def _pi_cache_pair(cache_root, dataset: str, params: Optional[ImagePIParams], counts: Tuple[Optional[int], ...],
                   pi_cache=None, verify: bool = True, input_norm: str = "dataset") -> Tuple[PICache, PICache]:
    """The train and test caches: under ``cache_root`` with ``params``; a ``pi_cache`` with its own (shared)."""
    folders = pi_cache_folders(cache_root, pi_cache, dataset)
    other = "" if pi_cache is not None else f"; to train on this cache as it is, pass --pi_cache {folders[0]}"
    params, name = (None, None) if pi_cache is not None else (params, dataset)
    train, test = (load_pi_cache(folder, params, count, name, split, verify, input_norm, other)
                   for folder, count, split in zip(folders, counts, ("train", "test")))
    if train.params != test.params:
        mixed = f" mix layouts ({train.params.layout!r} for train, {test.params.layout!r} for test)" \
            if train.params.layout != test.params.layout else " were made with other parameters"
        raise TopKDError(f"image-PI caches {train.folder} and {test.folder}{mixed}; regenerate one with the other's "
                         f"settings")
    return train, test


def attach_image_pis(bundle: DataBundle, cache_root, pi_cache=None, verify: bool = True,
                     input_norm: str = "dataset") -> DataBundle:
    """A copy of ``bundle`` whose items carry the cached PI (default `ImagePIParams`, or ``pi_cache`` as it is):
    ``(image, target, index, pi)`` (val uses the train cache)."""
    train = bundle.train
    train_n = len(train.dataset) if isinstance(train, torch.utils.data.Subset) else len(train)
    train_c, test_c = _pi_cache_pair(cache_root, bundle.name, ImagePIParams(), (train_n, len(bundle.test)), pi_cache,
                                     verify, input_norm)
    return replace(bundle, train=WithImagePI(bundle.train, train_c),
                   val=None if bundle.val is None else WithImagePI(bundle.val, train_c),
                   test=WithImagePI(bundle.test, test_c), fields=tuple(bundle.fields[:3]) + ("pi",))


def pi_bundle(cache_root, dataset: str, num_classes: int, params: Optional[ImagePIParams] = ImagePIParams(),
              val_fraction: float = 0.0, pi_cache=None, verify: bool = True,
              input_norm: str = "dataset") -> DataBundle:
    """A `DataBundle` of cached PIs for the PI teacher: items ``(pi, target, index)``, ``in_channels`` 2C,
    ``image_size`` R, ``mean``/``std`` the PI normalisation (0 / 1 for ``dataset``); val: held out of train."""
    train_c, test_c = _pi_cache_pair(cache_root, dataset, params, (None, None), pi_cache, verify, input_norm)
    train, val = hold_out(PIImages(train_c), None, val_fraction)
    channels = int(train_c.manifest["pi_shape"][0])
    mean, std = train_c.normalize or ((0.0,) * channels, (1.0,) * channels)
    return DataBundle(train=train, val=val, test=PIImages(test_c), num_classes=int(num_classes),
                      in_channels=channels, image_size=train_c.params.resolution, name=f"{dataset}_pi",
                      mean=tuple(mean), std=tuple(std))
