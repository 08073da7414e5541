"""What every stage script does once, before any work: `setup_stage`, and the flags all stages share.

`setup_stage(cfg)` is the one place with process-wide side effects: the ``logging`` output (rank 0 writes
its messages to stdout as plain lines; other ranks only warnings), torch's CPU thread count (``--threads``)
and, for the training stages (1 and 4), the torchrun process group (none under ``--plan``) and the seeds.
Library code only logs (``logging.getLogger(__name__)``) and reads what the setup decided
(`engine.distributed.current_dist`).
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import sys

import torch

from .distributed import DistInfo, pick_device, process, setup_distributed
from .record import option
from .seed import seed_everything

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

log = logging.getLogger(__name__)


def add_stage_args(group, workers_default: int, workers_help: str) -> None:
    """``--num_workers`` and ``--threads``: the same flags in every stage (neither changes a result)."""
    option(group, "--num_workers", type=int, default=workers_default, help=workers_help, result=False)
    option(group, "--threads", type=int, default=0, result=False,
           help="CPU threads for torch (0 = torch's default); 1 is fastest on a busy 2-core machine")


class _Stdout(logging.StreamHandler):
    """Writes to the ``sys.stdout`` of the moment (so a caller that swaps it, a test capture, sees the lines)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler sets it; the property always answers sys.stdout
        pass

    def handleError(self, record):
        """A failed write to stdout (a full disk, a closed pipe) fails the stage as a print would, instead of
        logging's traceback on stderr."""
        raise  # noqa: PLE0704  (re-raises the exception emit() is handling)


class _OursOnly(logging.Filter):
    """Records of this project's loggers only, ``logging.getLogger(__name__)`` of a module whose top-level
    package or script lies in the checkout (other libraries keep their own logging)."""

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def ours(top: str) -> bool:
        return (os.path.isfile(os.path.join(_REPO, top, "__init__.py"))
                or os.path.isfile(os.path.join(_REPO, f"{top}.py")))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.ours(record.name.split(".")[0])


def setup_logging(rank: int = 0) -> None:
    """Messages of this project's modules go to stdout as plain lines: INFO and above on rank 0, WARNING and
    above on other ranks. Replaces the handler an earlier call installed."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stdout)]:
        root.removeHandler(handler)
    handler = _Stdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_OursOnly())
    handler.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def setup_stage(cfg: argparse.Namespace, training: bool = False) -> DistInfo:
    """Once per stage process. ``cfg``: the parsed options (``threads``, ``device``, ``seed``, ``deterministic``
    where the stage has them). ``training``: stages 1 and 4, which also join the torchrun process group (nccl on
    CUDA, gloo on the CPU; none under ``--plan``) and seed every generator. -> this process's `DistInfo`."""
    info = process()
    if training and not getattr(cfg, "plan", False):
        info = setup_distributed(pick_device(getattr(cfg, "device", "auto")).type == "cuda")
    setup_logging(info.rank)
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    if training:
        seed_everything(cfg.seed, bool(getattr(cfg, "deterministic", False)))
    return info
