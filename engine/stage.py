"""What every stage script does once before any work (`setup_stage`: the one place with process-wide side
effects), the flags all stages share, and seeding and the capture/restore of every random generator (for exact
resume; the per-item randomness of training data is `datasets.keyed`)."""
import argparse
import functools
import logging
import os
import random
import sys
from typing import Any, Dict

import numpy as np
import torch

from .distributed import DistInfo, pick_device, process, setup_distributed
from .record import option

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_stage_args(group, workers_default: int, workers_help: str) -> None:
    """``--num_workers`` and ``--threads``: the same flags in every stage (neither changes a result)."""
    option(group, "--num_workers", type=int, default=workers_default, help=workers_help, result=False)
    option(group, "--threads", type=int, default=0, result=False,
           help="CPU threads for torch (0 = torch's default); 1 is fastest on a busy 2-core machine")


class _Stdout(logging.StreamHandler):
    """Writes to the ``sys.stdout`` of the moment (a test capture sees the lines); a failed write (a full disk,
    a closed pipe) fails the stage as a print would."""

    stream = property(lambda self: sys.stdout, lambda self, value: None)

    def handleError(self, record):
        raise  # noqa: PLE0704  (re-raises the exception emit() is handling)


@functools.lru_cache(maxsize=None)
def _ours(name: str) -> bool:
    """A logger of this project: its top-level package or script lies in the checkout."""
    top = os.path.join(_REPO, name.split(".")[0])
    return os.path.isfile(os.path.join(top, "__init__.py")) or os.path.isfile(top + ".py")


def setup_logging(rank: int = 0) -> None:
    """This project's messages to stdout as plain lines: INFO and above on rank 0, WARNING elsewhere."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stdout)]:
        root.removeHandler(handler)
    handler = _Stdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: _ours(record.name))
    handler.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))  # INFO, or the lower level a caller set


def setup_stage(cfg: argparse.Namespace, training: bool = False) -> DistInfo:
    """Once per stage process; ``training``: also join the torchrun process group and seed every generator."""
    info = process()
    if training and not getattr(cfg, "plan", False):
        info = setup_distributed(pick_device(cfg.device).type == "cuda")
    setup_logging(info.rank)
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    if training:
        seed_everything(cfg.seed, cfg.deterministic)
    return info


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch, plus the rank under torchrun (augmentations differ between processes).
    ``deterministic``: torch's deterministic algorithms and cuDNN flags (bit-exact reruns on the CPU)."""
    seed = int(seed) + process().rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(deterministic))
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.backends.cudnn.benchmark = not deterministic


def get_rng_state() -> Dict[str, Any]:
    """All generator states as tensors and plain containers (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
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
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
