"""Distributed data parallel helpers. A run is distributed when torchrun set ``WORLD_SIZE`` > 1.

Each process trains on ``batch_size // world_size`` images per step (the global batch stays
``batch_size``); gradients are averaged by DDP; evaluation is sharded over the processes, all holding rank 0's
network (its BatchNorm statistics broadcast first), and its sums are added up, so the logged metrics are those
of the checkpoint rank 0 saves; only rank 0 logs and writes files.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Iterator, List

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created_group: bool = False  # True when this process group was started by `setup_distributed`

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU -> ValueError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was given but no CUDA device is available; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def process() -> DistInfo:
    """This process's place as torchrun describes it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; one process
    without them). The one place these variables are read."""
    env = os.environ
    return DistInfo(int(env.get("RANK") or 0), int(env.get("WORLD_SIZE") or 1), int(env.get("LOCAL_RANK") or 0))


_CURRENT = DistInfo()  # the process group this process joined, set once by `setup_distributed`


def setup_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group torchrun describes (nccl on CUDA, gloo on the CPU); no-op otherwise. Called
    once per process by the stage setup (`engine.stage.setup_stage`); a group started here is destroyed
    when the process exits. The result is what `current_dist` returns from then on."""
    global _CURRENT
    here = process()
    rank, world, local_rank = here.rank, here.world_size, here.local_rank
    if world <= 1:
        _CURRENT = DistInfo()
        return _CURRENT
    created = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
        atexit.register(cleanup_distributed, DistInfo(rank, world, local_rank, created_group=True))
    _CURRENT = DistInfo(rank=rank, world_size=world, local_rank=local_rank, created_group=created)
    return _CURRENT


def current_dist() -> DistInfo:
    """The process group this process joined in its stage setup (a single process when none)."""
    return _CURRENT


def cleanup_distributed(info: DistInfo) -> None:
    if info.created_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: List[float], device: torch.device, info: DistInfo) -> List[float]:
    """Sum a list of numbers over processes (float64)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_process(flag: bool, device: torch.device, info: DistInfo) -> bool:
    """True when ``flag`` is true on at least one process."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every process's picklable ``obj``, in rank order, on every process (``[obj]`` without DDP)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Every process takes rank 0's buffers of ``module`` (BatchNorm running statistics: each process updated
    its own with its last batches; rank 0's are the ones saved)."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index starting at ``rank``, no padding: evaluation sees each item once."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def ddp_ignore_names(distiller: torch.nn.Module) -> List[str]:
    """Parameter/buffer names of the distiller's frozen networks (``distiller.frozen_networks()``: the
    teachers), which DDP must neither reduce nor broadcast."""
    frozen = dict(getattr(distiller, "frozen_networks", lambda: {})())
    names = []
    for attr, module in frozen.items():
        names += [f"{attr}.{n}" for n, _ in module.named_parameters()]
        names += [f"{attr}.{n}" for n, _ in module.named_buffers()]
    return names
