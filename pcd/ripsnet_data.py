"""Training data for RipsNet: the clouds and exact persistence images of a finished stage-2 folder,
read lazily from the memory-mapped shards and ``pi_dim<k>.npy``."""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from topkd_io import DamagedFileError, TopKDError

from .manifest import check_images, open_verified, pi_entry, read_manifest, rebuild_command
from .store import ShardedClouds, load_npy


class Stage2Data(Dataset):
    """Items ``(cloud float32 [N, D], pi float32 [R*R])`` of homology dim ``dim`` of a stage-2 folder, checked
    when opened (`pcd.manifest.open_verified`, `check_images`; ``verify=False``: file sizes only)."""

    def __init__(self, folder: str, dim: int, verify: bool = True):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"stage-2 folder {folder} not found; run generate_PCD_PI.py first "
                                    "and pass its --out_dir")
        self.folder, self.dim = folder, int(dim)
        manifest = read_manifest(folder)
        rebuild = rebuild_command(folder, manifest)
        pis = manifest.get("pi") or {}
        if not manifest.get("complete") or not pis or not manifest.get("shards"):
            state = "is unfinished" if not manifest.get("complete") else "is marked complete but holds no " \
                f"{'persistence images' if not pis else 'point clouds'}"
            raise TopKDError(f"stage-2 folder {folder} {state}; rerun generate_PCD_PI.py to complete it: {rebuild}")
        entry = pi_entry(manifest, self.dim)
        if entry is None:
            have = sorted(int(d) for d in pis)
            raise TopKDError(f"{folder} has no persistence images for dim {dim} (it has dims {have}); pass "
                             f"--dim {have[0]}, or regenerate it with --dims {dim}")
        self.manifest = open_verified(folder, [self.dim], verify)
        shards = self.manifest["shards"]
        self.clouds = ShardedClouds(folder, [r["pcd"] for r in shards], [r["clouds"] for r in shards])
        self.pi_file = entry["file"]
        pi_path = os.path.join(folder, self.pi_file)
        self.pis = load_npy(pi_path, "persistence-image file")
        if len(self.pis) != len(self.clouds):
            raise DamagedFileError(f"{pi_path} holds {len(self.pis)} images for {len(self.clouds)} clouds; regenerate {folder}")
        bad = np.flatnonzero(~np.isfinite(self.pis).all(axis=1))
        if len(bad):
            raise DamagedFileError(f"{pi_path} has non-finite values in {len(bad)} persistence image(s) (first: cloud "
                             f"{bad[0]}); rerun generate_PCD_PI.py on {folder} to rebuild it")
        check_images(folder, self.manifest, self.dim, self.pis)
        self.pi_params: Dict[str, Any] = entry["params"]

    @property
    def input_dim(self) -> int:
        return self.clouds.shape[2]

    @property
    def pi_size(self) -> int:
        return int(self.pis.shape[1])

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.clouds[i]), torch.from_numpy(np.array(self.pis[i], dtype=np.float32))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["pis"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.pis = load_npy(os.path.join(self.folder, self.pi_file), "persistence-image file")


def split_indices(n: int, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of ``range(n)`` cut into (train, val); val gets ``ceil(val_fraction * n)`` (>= 1; the
    fraction in (0, 1) is checked at the door)."""
    if n < 2:
        raise TopKDError(f"need at least 2 clouds to split into train and validation, got {n}")
    n_val = min(n - 1, max(1, math.ceil(val_fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
