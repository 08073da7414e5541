"""Keyed randomness: every random choice about a training item is a fixed function of its key.

An item's key is ``(seed, epoch, index)``: the run's ``--seed``, the epoch (stage 2: the pass) and the item's
position in the training set. Each choice (crop row, crop column, flip, CRD's negatives, the seeds of the global
generators) reads its own *stream* (unsigned 64-bit arithmetic)::

    mix(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;  z ^ (z >> 31)
    word(seed, epoch, index, stream):  h = 0
        for w in (seed, epoch, index, stream): h = mix((h ^ w) + 0x9E3779B97F4A7C15)

an integer in ``[0, n)`` is ``word mod n``, a real in ``[0, 1)`` is ``(word >> 11) / 2**53`` (``mix`` is
SplitMix64's output function). Nothing is streamed from one item to the next, so the draws do not
depend on the process, the worker count or where a run resumed, and the device path (`datasets.device_data`)
computes the same numbers for a whole batch with numpy (`words`). `RULE` names the rule where a result records it.

`KeyedItems` reads items under keys ``(epoch, index)`` from `KeyedSampler`, making the key *active* meanwhile:
the keyed transforms (`datasets.transforms`) and CRD's `distiller.crd.ContrastSample` read it through
`item_integer` / `item_unit` / `item_word` (outside a keyed item: torch's global generator). It also seeds the
global generators from the key, so other random transforms (ImageNet's ``RandomResizedCrop``) are keyed too.
"""
from __future__ import annotations

import contextvars
import random
from typing import Optional, Tuple

import numpy as np
import torch

RULE = "splitmix64-keyed/1"

STREAM_GLOBAL, STREAM_CROP_ROW, STREAM_CROP_COL, STREAM_FLIP, STREAM_CONTRAST = 0, 1, 2, 3, 4

_M64 = 2**64 - 1
_GAMMA, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


# ----------------------------------------------------------------------------- the rule, one key
def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MUL1) & _M64
    z = ((z ^ (z >> 27)) * _MUL2) & _M64
    return z ^ (z >> 31)


def _absorb(h: int, w: int) -> int:
    return _mix(((h ^ (w & _M64)) + _GAMMA) & _M64)


def item_prefix(seed: int, epoch: int, index: int) -> int:
    """The state after absorbing ``(seed, epoch, index)``; `stream_word` finishes a word from it."""
    return _absorb(_absorb(_absorb(0, int(seed)), int(epoch)), int(index))


def stream_word(prefix: int, stream: int) -> int:
    """``word(seed, epoch, index, stream)`` from ``item_prefix(seed, epoch, index)``."""
    return _absorb(prefix, int(stream))


def word(seed: int, epoch: int, index: int, stream: int) -> int:
    """The 64-bit word of the rule (module docstring) for one key, a python int in ``[0, 2**64)``."""
    return stream_word(item_prefix(seed, epoch, index), stream)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The 63-bit seed ``KeyedItems`` gives the global generators for item ``(seed, epoch, index)``."""
    return word(seed, epoch, index, STREAM_GLOBAL) & (2**63 - 1)


# ----------------------------------------------------------------------------- the rule, many keys
def _mix_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MUL1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MUL2)
    return z ^ (z >> np.uint64(31))


def _as_words(values) -> np.ndarray:
    """Integers (python ints or an int array, any sign) -> uint64 words modulo 2**64."""
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        arr = np.asarray([int(v) & _M64 for v in np.ravel(arr)], dtype=np.uint64).reshape(np.shape(values))
    return arr.astype(np.uint64)  # two's complement: -1 -> 2**64 - 1, as (w mod 2**64)


def words(seed: int, epochs, indices, stream: int) -> np.ndarray:
    """uint64 ``[n]``: ``word(seed, epochs[k], indices[k], stream)`` for each k (``epochs`` may be one int)."""
    indices = _as_words(indices).reshape(-1)
    epochs = _as_words(epochs)
    epochs = np.broadcast_to(epochs.reshape(-1) if epochs.ndim else epochs, indices.shape)
    gamma = np.uint64(_GAMMA)
    h = np.full(indices.shape, _absorb(0, int(seed)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in (epochs, indices, np.uint64(int(stream) & _M64)):
            h = _mix_array((h ^ w) + gamma)
    return h


def integers(seed: int, epochs, indices, stream: int, n: int) -> np.ndarray:
    """int64 ``[k]``: uniform integers in ``[0, n)`` (``word mod n``) for each key."""
    if not 1 <= n < 2**63:
        raise ValueError(f"n must be in 1..2**63-1, got {n}")
    return (words(seed, epochs, indices, stream) % np.uint64(n)).astype(np.int64)


def units(seed: int, epochs, indices, stream: int) -> np.ndarray:
    """float64 ``[k]``: uniform reals in ``[0, 1)`` (``(word >> 11) / 2**53``) for each key."""
    return (words(seed, epochs, indices, stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53


# ----------------------------------------------------------------------------- the active item
_ACTIVE: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("topkd_active_item", default=None)


def active_key() -> Optional[int]:
    """The `item_prefix` of the item `KeyedItems` is reading now, or None outside a keyed item."""
    return _ACTIVE.get()


def item_word(stream: int) -> int:
    """The active item's word of ``stream``; outside a keyed item a 63-bit draw of torch's generator."""
    prefix = _ACTIVE.get()
    if prefix is None:
        return int(torch.randint(0, 2**63 - 1, ()))
    return stream_word(prefix, stream)


def item_integer(stream: int, n: int) -> int:
    """An integer in ``[0, n)``: the active item's ``word mod n``, else ``torch.randint(0, n)``."""
    prefix = _ACTIVE.get()
    if prefix is None:
        return int(torch.randint(0, n, ()))
    return stream_word(prefix, stream) % n


def item_unit(stream: int) -> float:
    """A real in ``[0, 1)``: the active item's ``(word >> 11) / 2**53``, else ``torch.rand(())``."""
    prefix = _ACTIVE.get()
    if prefix is None:
        return float(torch.rand(()))
    return (stream_word(prefix, stream) >> 11) * 2.0**-53


# ----------------------------------------------------------------------------- keyed data sets
class KeyedSampler(torch.utils.data.Sampler):
    """Wraps an index sampler; yields ``(epoch, index)`` keys for `KeyedItems`. ``set_epoch`` is passed on.
    The epoch travels inside the keys, so persistent workers see it too."""

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


def _split_key(key) -> Tuple[int, int]:
    return (int(key[0]), int(key[1])) if isinstance(key, tuple) else (0, int(key))


class KeyedItems(torch.utils.data.Dataset):
    """``dataset[index]`` read under the key ``(seed, epoch, index)``; the item key is an ``(epoch, index)``
    pair (a plain int means epoch 0).

    While the item is read its key is active (the keyed transforms and CRD read their draws from it), and
    torch's, numpy's and python's global generators are seeded with `item_seed`. In the main process
    (``--num_workers 0``) their states are saved and restored around the item, so drawing it leaves the
    training stream untouched; in a DataLoader worker they are not (every item reseeds them anyway, and
    a worker's generators feed nothing else), which saves most of the per-item cost.
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
        epoch, index = _split_key(key)
        prefix = item_prefix(self.seed, epoch, index)
        seed = stream_word(prefix, STREAM_GLOBAL) & (2**63 - 1)
        token = _ACTIVE.set(prefix)
        try:
            if torch.utils.data.get_worker_info() is not None:
                _seed_globals(seed)
                return self.dataset[index]
            torch_state, py_state, np_state = torch.default_generator.get_state(), random.getstate(), \
                np.random.get_state()
            try:
                _seed_globals(seed)
                return self.dataset[index]
            finally:
                torch.default_generator.set_state(torch_state)
                random.setstate(py_state)
                np.random.set_state(np_state)
        finally:
            _ACTIVE.reset(token)


def _seed_globals(seed: int) -> None:
    # the CPU generator only: torch.manual_seed would also queue a CUDA reseed (with a stack capture,
    # ~0.5 ms per item)
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
