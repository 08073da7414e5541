"""CPU work of the batched topology kernels spread over a thread pool of our own, one torch thread each.

Torch's intra-op threads meet at a barrier after every small operation of the kernels (Prim's steps, the image
exponentials); beside other busy processes one descheduled thread stalls them all (measured on 2 cores next to
two 2-thread torch jobs: 0.3-0.7x gudhi's speed, against 6-8x with one thread). Here a batch is cut into parts,
each run start to end by one single-threaded worker: as many workers as the caller's ``torch.get_num_threads()``,
at most one per ``min_items`` items (a training step's few clouds stay in the calling thread).
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Sequence, Tuple, TypeVar

import torch

T = TypeVar("T")

_POOL: "ThreadPoolExecutor | None" = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _single_thread_worker() -> None:
    torch.set_num_threads(1)  # OpenMP's thread count is per thread: the callers keep theirs


def _pool(size: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < size:
            old = _POOL
            _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="topology",
                                       initializer=_single_thread_worker)
            _POOL_SIZE = size
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def worker_count(items: int, min_items: int) -> int:
    """Workers for ``items`` units of work: the caller's torch thread count, at most one per ``min_items``."""
    return max(1, min(torch.get_num_threads(), items // max(1, min_items)))


def split(n: int, parts: int, max_size: int | None = None) -> List[Tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)``. One part: consecutive runs of ``max_size`` (the last one
    shorter), as a plain chunked loop does. Several: at least ``parts`` ranges of near-equal length, none longer
    than ``max_size``."""
    if n <= 0:
        return []
    if parts <= 1:
        size = max_size or n
        return [(s, min(n, s + size)) for s in range(0, n, size)]
    count = max(parts, math.ceil(n / max_size) if max_size else 1)
    size = math.ceil(n / count)
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def run_parts(fn: Callable[..., T], parts: Sequence[tuple], workers: int) -> List[T]:
    """``[fn(*p) for p in parts]``, on ``workers`` single-threaded pool threads when ``workers > 1`` (results
    in order; the first exception is raised), else in the calling thread."""
    if workers <= 1 or len(parts) <= 1:
        return [fn(*p) for p in parts]
    caller = torch.get_num_threads()
    try:
        futures = [_pool(workers).submit(fn, *p) for p in parts]
        return [f.result() for f in futures]
    finally:
        # a worker's set_num_threads(1) also updates torch's process-wide default for threads it starts later;
        # restore the caller's value there (the caller's own count never changed)
        torch.set_num_threads(caller)
