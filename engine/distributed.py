"""Distributed data parallel helpers. A run is distributed when torchrun set ``WORLD_SIZE`` > 1.

Each process trains on ``batch_size // world_size`` images per step; DDP averages the gradients. Evaluation is
sharded over the processes, all holding rank 0's network (BatchNorm statistics broadcast first), and its sums
are added up, so the logged metrics are those of the checkpoint rank 0 saves. Only rank 0 logs and writes."""
import atexit
import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist

from topkd_io import TopKDError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is refused."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TopKDError("--device cuda was given but no CUDA device is available; use --device cpu or auto")
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def process() -> DistInfo:
    """This process's place as torchrun describes it: the one place ``RANK`` and ``WORLD_SIZE`` are read."""
    env = os.environ
    return DistInfo(int(env.get("RANK") or 0), int(env.get("WORLD_SIZE") or 1), int(env.get("LOCAL_RANK") or 0))


_CURRENT = DistInfo()  # the process group this process joined, set once by `setup_distributed`


def setup_distributed(use_cuda: bool) -> DistInfo:
    """Join torchrun's process group (nccl on CUDA, gloo on the CPU; destroyed at exit) once per stage."""
    global _CURRENT
    _CURRENT = process() if process().enabled else DistInfo()
    if _CURRENT.enabled and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(_CURRENT.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return _CURRENT


def current_dist() -> DistInfo:
    """The process group this process joined in its stage setup (a single process when none)."""
    return _CURRENT


def all_reduce_sum(values: List[float], device: torch.device, info: DistInfo) -> List[float]:
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every process's picklable ``obj``, in rank order, on every process (``[obj]`` without DDP)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Every process takes rank 0's buffers of ``module`` (the BatchNorm statistics rank 0 saves)."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
