"""Seeding, determinism, and capture/restore of every random number generator (for exact resume).

The per-item randomness of training data (keyed by seed, epoch and index) is `datasets.keyed`."""
from __future__ import annotations

import os
import random
from typing import Any, Dict

import numpy as np
import torch

from .distributed import process


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices). Under torchrun the rank is added to the seed so that
    augmentations differ between processes (DDP copies rank 0's initial weights to every rank anyway).

    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` and the cuDNN flags: reruns are
    bit-exact on the CPU (and on one GPU for operations that have deterministic kernels).
    """
    seed = int(seed) + process().rank
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
