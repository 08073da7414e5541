"""Seeding, determinism, and capture/restore of every random number generator (for exact resume)."""
from __future__ import annotations

import os
import random
from typing import Any, Dict

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices). Under torchrun the rank is added to the seed so that
    augmentations differ between processes (DDP copies rank 0's initial weights to every rank anyway).

    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` and the cuDNN flags: reruns are
    bit-exact on the CPU (and on one GPU for operations that have deterministic kernels).
    """
    seed = int(seed) + int(os.environ.get("RANK", 0))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    set_deterministic(deterministic)


def set_deterministic(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(enabled), warn_only=False)
    torch.backends.cudnn.deterministic = bool(enabled)
    torch.backends.cudnn.benchmark = not enabled


def worker_init_fn(worker_id: int) -> None:
    """DataLoader workers: derive python/numpy seeds from the per-worker torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def get_rng_state() -> Dict[str, Any]:
    """All generator states as tensors and plain containers (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of `get_rng_state` (missing entries are left alone)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ----------------------------------------------------------------------------- keyed item randomness
# Augmentation (and CRD's negatives) must not depend on which process draws an item, nor on how many
# data-loader workers there are, nor on where a run was resumed. So every training item is drawn with
# all generators seeded from (run seed, epoch, item index) and the caller's generator states restored
# afterwards. The epoch travels inside the sampler's keys, so persistent workers see it too.

def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that is a fixed function of ``(seed, epoch, index)`` (numpy's SeedSequence mixing)."""
    words = np.random.SeedSequence([int(seed) % 2**63, int(epoch) % 2**63, int(index) % 2**63]).generate_state(2)
    return int((int(words[0]) << 32 | int(words[1])) & (2**63 - 1))


class KeyedSampler(torch.utils.data.Sampler):
    """Wraps an index sampler; yields ``(epoch, index)`` keys for `KeyedItems`. ``set_epoch`` is passed on."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class KeyedItems(torch.utils.data.Dataset):
    """``dataset[index]`` drawn with torch's, numpy's and python's global generators seeded by
    `item_seed(seed, epoch, index)`; the key is an ``(epoch, index)`` pair (a plain int means epoch 0).

    The surrounding generator states are saved and restored, so drawing an item in the main process
    (``--num_workers 0``) leaves the training stream untouched.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):  # targets, index_space, ... of the wrapped set
        if name in ("dataset", "seed") or name.startswith("__"):  # no __getitems__ etc. of the wrapped set
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        s = item_seed(self.seed, epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would also queue a CUDA reseed (with a stack capture,
            # ~0.5 ms per item) that fork_rng(devices=[]) does not undo
            torch.default_generator.manual_seed(s)
            random.seed(s)
            np.random.seed(s % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
