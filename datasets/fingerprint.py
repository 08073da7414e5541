"""Cheap fingerprints of the data a run reads, for its identity: ``(root, download) -> hex digest``, or
FileNotFoundError naming what is missing. `file_md5s`: files by their MD5 (CIFAR: the sums torchvision checks,
so data about to be downloaded already have their fingerprint). `image_tree`: ImageFolder splits by the sorted
(relative path, size) of every file, kept in ``$XDG_CACHE_HOME/topkd/data_fingerprints.json`` while the split
and class folders' modification times stay the same (a same-size rewrite in place is not seen).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Callable, Iterable, Sequence, Tuple

from torchvision.datasets.utils import calculate_md5

from topkd_io import TopKDError, write_text

Fingerprint = Callable[[str, bool], str]
CACHE_NAME = "data_fingerprints.json"


def digest(items) -> str:
    """SHA-256 (hex) of a JSON-able value."""
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _md5(path: str, size: int, mtime_ns: int) -> str:
    return calculate_md5(path)


def file_md5s(folder: str, names: Iterable[str]) -> str:
    """Fingerprint of the files ``names`` in ``folder`` (their MD5s, once per process per size and mtime);
    FileNotFoundError naming the first missing one."""
    sums = []
    for name in sorted(names):
        path = os.path.abspath(os.path.join(folder, name))
        st = os.stat(path)  # FileNotFoundError names the file
        sums.append((name, _md5(path, st.st_size, st.st_mtime_ns)))
    return digest(sums)


def _cache_path() -> str:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "topkd", CACHE_NAME)


def _read_cache(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):  # none yet, unreadable or corrupt: recomputed
        return {}
    return data if isinstance(data, dict) else {}


def _tree_state(folders: Sequence[str]) -> str:
    """The modification times of the split folders and of the folders right below them (the classes)."""
    stamps = []
    for folder in folders:
        stamps.append((folder, os.stat(folder).st_mtime_ns))
        stamps += sorted((e.path, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.is_dir())
    return digest(stamps)


def _tree_listing(root: str, folders: Sequence[str]) -> str:
    files = []
    for folder in folders:
        for here, _, names in os.walk(folder, followlinks=True):  # ImageFolder follows links too
            files += [(os.path.relpath(os.path.join(here, n), root), os.path.getsize(os.path.join(here, n)))
                      for n in names]
    return digest(sorted(files))


def image_tree(*splits: str) -> Fingerprint:
    """The fingerprint of ImageFolder trees ``<root>/<split>/<class>/<image>`` (module docstring)."""

    def fingerprint(root: str, download: bool = False) -> str:
        root = os.path.abspath(root)
        folders = [os.path.join(root, s) for s in splits]
        for folder in folders:
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"data folder {folder} not found; point --data_root at the folder holding "
                                        f"{' and '.join(f'{s}/<class>/<image>' for s in splits)}")
        key, state = "\n".join(folders), _tree_state(folders)
        path = _cache_path()
        entry = _read_cache(path).get(key)
        if isinstance(entry, dict) and entry.get("state") == state and isinstance(entry.get("fingerprint"), str):
            return entry["fingerprint"]
        value = _tree_listing(root, folders)
        cache = _read_cache(path)
        cache[key] = {"state": state, "fingerprint": value}
        try:
            write_text(path, json.dumps(cache, indent=0, sort_keys=True))
        except (OSError, TopKDError):  # an unwritable cache: computed again next time
            pass
        return value

    return fingerprint


def declared_md5s(entries: Iterable[Tuple[str, str]]) -> str:
    """The fingerprint `file_md5s` gives files whose MD5s are ``entries`` ``[(name, md5)]``."""
    return digest(sorted((name, md5) for name, md5 in entries))
