"""Name -> builder registry, what each data set declares about itself (`DatasetInfo`), the one entry point
`build_datasets`, and the fingerprints of the data a run reads (part of its identity): ``(root, download) -> hex
digest``, or FileNotFoundError naming what is missing."""
import functools
import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional

from torchvision.datasets.utils import calculate_md5

from topkd_io import TopKDError, write_text

from .bundle import DataBundle, check_val_fraction

Fingerprint = Callable[[str, bool], str]


@dataclass(frozen=True)
class DatasetInfo:
    """``recipe``: a name of ``engine.config.RECIPES`` its runs take; ``on_device``: its images are in memory."""

    name: str
    recipe: str
    fingerprint: Fingerprint
    on_device: bool = False


# name -> function(root, download, val_fraction, **options) -> DataBundle
DATASET_BUILDERS: Dict[str, Callable[..., DataBundle]] = {}
DATASET_INFO: Dict[str, DatasetInfo] = {}
_COMMON = ("root", "download", "val_fraction")


def register(name: str, *, recipe: str, fingerprint: Fingerprint, on_device: bool = False):
    """``@register(name, recipe=..., fingerprint=...)``: a builder by name, with its `DatasetInfo`."""

    def wrap(fn: Callable) -> Callable:
        if name in DATASET_BUILDERS:
            raise ValueError(f"data set name {name!r} registered twice")
        DATASET_BUILDERS[name] = fn
        DATASET_INFO[name] = DatasetInfo(name, str(recipe), fingerprint, bool(on_device))
        return fn

    return wrap


def dataset_names() -> List[str]:
    return sorted(DATASET_BUILDERS)


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASET_INFO[name]
    except (KeyError, TypeError):
        raise TopKDError(f"unknown data set {name!r}; choose one of: {', '.join(dataset_names())}") from None


def data_fingerprint(name: str, root: str, download: bool = False, must_exist: bool = True) -> Optional[str]:
    """The fingerprint of data set ``name`` at ``root``; missing data: FileNotFoundError, or None (``must_exist``)."""
    try:
        return dataset_info(name).fingerprint(str(root), bool(download))
    except FileNotFoundError:
        if must_exist:
            raise
        return None


def builder_options(name: str) -> List[str]:
    """The per-data-set keyword options the builder of ``name`` takes ([] for an unknown name)."""
    builder = DATASET_BUILDERS.get(name) if isinstance(name, str) else None
    return [p for p in inspect.signature(builder).parameters if p not in _COMMON] if builder else []


def builder_default(name: str, option: str):
    """The default value of the keyword ``option`` of the builder of ``name`` (None when it has none)."""
    builder = DATASET_BUILDERS.get(name) if isinstance(name, str) else None
    param = inspect.signature(builder).parameters.get(option) if builder is not None else None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def build_datasets(name: str, root: str = "./data", download: bool = False, val_fraction: float = 0.0,
                   **options) -> DataBundle:
    """The train/(val)/test sets of data set ``name`` under ``root``; ``val_fraction``: the fraction of the
    training data held out as ``val`` (the same items whatever the seed: `bundle.SPLIT_KEY`); ``options``: the
    data set's own keywords (``image_size``, ...)."""
    builder = DATASET_BUILDERS[dataset_info(name).name]
    val_fraction = check_val_fraction(val_fraction)
    unknown = sorted(set(options) - set(builder_options(name)))
    if unknown:
        raise TopKDError(f"unknown option(s) {', '.join(unknown)} for data set {name!r}; "
                         f"valid: {', '.join(builder_options(name)) or 'none'}")
    return builder(root=str(root), download=bool(download), val_fraction=val_fraction, **options)


def digest(items) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _md5(path: str, size: int, mtime_ns: int) -> str:
    return calculate_md5(path)


def file_md5s(folder: str, names: Iterable[str]) -> str:
    """Fingerprint of the files ``names`` in ``folder`` by their MD5s (CIFAR: the sums torchvision checks, so
    data about to be downloaded already have their fingerprint, `declared_md5s`)."""
    sums = []
    for name in sorted(names):
        path = os.path.abspath(os.path.join(folder, name))
        st = os.stat(path)
        sums.append((name, _md5(path, st.st_size, st.st_mtime_ns)))
    return digest(sums)


def declared_md5s(entries: Iterable) -> str:
    """The fingerprint `file_md5s` gives files whose MD5s are ``entries`` ``[(name, md5)]``."""
    return digest(sorted((name, md5) for name, md5 in entries))


def _read_cache(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):  # none yet, unreadable or corrupt: recomputed
        return {}
    return data if isinstance(data, dict) else {}


def image_tree(*splits: str) -> Fingerprint:
    """The fingerprint of ImageFolder trees ``<root>/<split>/<class>/<image>``: the sorted (relative path, size)
    of every file, kept in ``$XDG_CACHE_HOME/topkd/data_fingerprints.json`` while the split and class folders'
    modification times stay the same (a same-size rewrite in place is not seen)."""

    def fingerprint(root: str, download: bool = False) -> str:
        root = os.path.abspath(root)
        folders = [os.path.join(root, s) for s in splits]
        for folder in folders:
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"data folder {folder} not found; point --data_root at the folder holding "
                                        f"{' and '.join(f'{s}/<class>/<image>' for s in splits)}")
        stamps = []  # the split folders' and their class folders' modification times
        for folder in folders:
            stamps.append((folder, os.stat(folder).st_mtime_ns))
            stamps += sorted((e.path, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.is_dir())
        home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        key, state, path = "\n".join(folders), digest(stamps), os.path.join(home, "topkd", "data_fingerprints.json")
        entry = _read_cache(path).get(key)
        if isinstance(entry, dict) and entry.get("state") == state and isinstance(entry.get("fingerprint"), str):
            return entry["fingerprint"]
        files = [(os.path.relpath(os.path.join(here, n), root), os.path.getsize(os.path.join(here, n)))
                 for folder in folders for here, _, names in os.walk(folder, followlinks=True) for n in names]
        value = digest(sorted(files))
        cache = _read_cache(path)
        cache[key] = {"state": state, "fingerprint": value}
        try:
            write_text(path, json.dumps(cache, indent=0, sort_keys=True))
        except (OSError, TopKDError):  # an unwritable cache: computed again next time
            pass
        return value

    return fingerprint
