"""The files of a stage-2 folder: ``shards/pcd_<i>.npy`` (float32 ``[S_i, N, D]`` clouds),
``shards/pd_dim<k>_<i>.npz`` (``rows`` float64 ``[M, 2]`` finite (birth, death) rows stacked over the shard's
clouds, ``counts`` int64 ``[S_i]`` rows per cloud) and ``pi_dim<k>.npy`` (float32 ``[num_clouds, R*R]``).
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from topkd_io import TopKDError, atomic_write  # noqa: F401 - re-exported for stage-2 writers
from topkd_io.atomic import AtomicNpyWriter  # noqa: F401 - the streamed .npy writer (pi_dim<k>.npy)
from topkd_io.safe_load import load_npy as read_npy

SHARD_DIR = "shards"


def pcd_name(index: int) -> str:
    return f"{SHARD_DIR}/pcd_{index:05d}.npy"


def diagram_name(dim: int, index: int) -> str:
    return f"{SHARD_DIR}/pd_dim{dim}_{index:05d}.npz"


def pi_name(dim: int) -> str:
    return f"pi_dim{dim}.npy"


def load_npy(path: str, what: str) -> np.ndarray:
    """Memory-map a ``.npy`` file of a stage-2 folder read-only; an unreadable one -> ValueError naming it."""
    folder = os.path.dirname(os.path.dirname(os.path.abspath(path))) if SHARD_DIR in path else os.path.dirname(path)
    return read_npy(path, what, rebuild=f"generate_PCD_PI.py with the same arguments on {folder}")


def load_diagrams(path: str) -> List[np.ndarray]:
    """A shard's diagram file -> list of ``[k_i, 2]`` float64 arrays, one per cloud."""
    with np.load(path) as data:
        rows, counts = data["rows"], data["counts"]
    return np.split(rows, np.cumsum(counts)[:-1]) if len(counts) else []


def stack_diagrams(diagrams: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    """List of ``[k_i, 2]`` diagrams -> ``{'rows': [sum k_i, 2] float64, 'counts': [n] int64}``."""
    counts = np.array([len(d) for d in diagrams], dtype=np.int64)
    rows = (np.concatenate([np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in diagrams])
            if len(diagrams) else np.zeros((0, 2)))
    return {"rows": rows, "counts": counts}


class ShardedClouds:
    """Read-only view of all point-cloud shards of a stage-2 folder as one ``[num_clouds, N, D]`` array.

    Shards are opened as memory maps on first use; ``clouds[i]`` -> float32 ``[N, D]``,
    ``clouds.take(indices)`` -> ``[len(indices), N, D]`` (copies only those clouds).
    """

    def __init__(self, folder: str, shard_files: Sequence[str], shard_sizes: Sequence[int]):
        self.folder = folder
        self.files = list(shard_files)
        self.sizes = np.asarray(shard_sizes, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self._maps: Dict[int, np.ndarray] = {}
        self.shape = self._shape()

    def _shape(self) -> Tuple[int, int, int]:
        if not self.files:
            raise TopKDError(f"stage-2 folder {self.folder} lists no point-cloud shards; rerun generate_PCD_PI.py")
        first = self._map(0)
        return (int(self.starts[-1]), int(first.shape[1]), int(first.shape[2]))

    def _map(self, shard: int) -> np.ndarray:
        if shard not in self._maps:
            path = os.path.join(self.folder, self.files[shard])
            if not os.path.isfile(path):
                raise FileNotFoundError(f"point-cloud shard {path} is missing; rerun generate_PCD_PI.py "
                                        "with the same --out_dir to rebuild it")
            arr = load_npy(path, "point-cloud shard")
            if arr.shape[0] != self.sizes[shard]:
                raise TopKDError(f"shard {path} holds {arr.shape[0]} clouds but the manifest says "
                                 f"{self.sizes[shard]}; the folder is inconsistent, regenerate it")
            self._maps[shard] = arr
        return self._maps[shard]

    def __len__(self) -> int:
        return self.shape[0]

    def locate(self, index: int) -> Tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"cloud index {index} out of range [0, {len(self)})")
        shard = int(np.searchsorted(self.starts, index, side="right") - 1)
        return shard, int(index - self.starts[shard])

    def __getitem__(self, index: int) -> np.ndarray:
        shard, pos = self.locate(int(index))
        return np.array(self._map(shard)[pos])  # a writable copy of one cloud

    def take(self, indices: Sequence[int]) -> np.ndarray:
        out = np.empty((len(indices),) + self.shape[1:], dtype=np.float32)
        for j, i in enumerate(indices):
            out[j] = self[i]
        return out

    def __getstate__(self):  # DataLoader workers reopen the maps themselves
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state
