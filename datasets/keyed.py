"""Keyed randomness: every random choice about a training item is a fixed function of its key.

An item's key is ``(seed, epoch, index)`` (the run's ``--seed``, the epoch or stage 2's pass, the item's position
in the training set); each choice (crop row, crop column, flip, CRD's negatives, the global generators' seeds)
reads its own *stream* (unsigned 64-bit arithmetic; ``mix`` is SplitMix64's output function)::

    mix(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;  z ^ (z >> 31)
    word(seed, epoch, index, stream):  h = 0
        for w in (seed, epoch, index, stream): h = mix((h ^ w) + 0x9E3779B97F4A7C15)

an integer in ``[0, n)`` is ``word mod n``, a real in ``[0, 1)`` is ``(word >> 11) / 2**53``. Nothing is streamed
from one item to the next, so the draws do not depend on the process, the worker count or where a run resumed;
the device path computes the same numbers for a whole batch (`words`). `RULE` names the rule in results.
`KeyedItems` reads an item with its key *active* (read by `item_integer` / `item_unit` / `item_word`) and the
global generators seeded from it, so other random transforms (``RandomResizedCrop``) are keyed too."""
import contextvars
import random
from typing import Optional

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
    """int64 ``[k]``: uniform integers in ``[0, n)`` (``word mod n``, 1 <= n < 2**63) for each key."""
    return (words(seed, epochs, indices, stream) % np.uint64(n)).astype(np.int64)


def units(seed: int, epochs, indices, stream: int) -> np.ndarray:
    """float64 ``[k]``: uniform reals in ``[0, 1)`` (``(word >> 11) / 2**53``) for each key."""
    return (words(seed, epochs, indices, stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53


# ----------------------------------------------------------------------------- the active item
_ACTIVE: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("topkd_active_item", default=None)


def active_key() -> Optional[int]:
    """The `item_prefix` of the item `KeyedItems` is reading now, or None outside a keyed item."""
    return _ACTIVE.get()


# The active item's draws of one stream; outside a keyed item, torch's global generator draws instead.
def item_word(stream: int) -> int:
    prefix = _ACTIVE.get()
    return int(torch.randint(0, 2**63 - 1, ())) if prefix is None else stream_word(prefix, stream)


def item_integer(stream: int, n: int) -> int:
    prefix = _ACTIVE.get()
    return int(torch.randint(0, n, ())) if prefix is None else stream_word(prefix, stream) % n


def item_unit(stream: int) -> float:
    prefix = _ACTIVE.get()
    return float(torch.rand(())) if prefix is None else (stream_word(prefix, stream) >> 11) * 2.0**-53


# ----------------------------------------------------------------------------- keyed data sets
class KeyedSampler(torch.utils.data.Sampler):
    """An index sampler's items as ``(epoch, index)`` keys: the epoch reaches persistent workers too."""

    def __init__(self, sampler):
        self.sampler, self.epoch = sampler, 0

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
    """``dataset[index]`` read under the key ``(seed, epoch, index)`` (item keys: ``(epoch, index)``, or an int for
    epoch 0): the key is active, and torch's, numpy's and python's global generators are seeded with `item_seed`.
    In the main process their states are restored after the item, so the training stream is untouched; in a
    DataLoader worker they are not (every item reseeds them, and they feed nothing else there)."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):  # targets, index_space, ... of the wrapped set
        if name in ("dataset", "seed") or name.startswith("__"):  # no __getitems__ etc. of the wrapped set
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (0, int(key))
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
