"""datasets.keyed: the counter rule of every per-item draw, and KeyedItems / the keyed transforms.

The rule is checked against a transcription written here from the formula in the module docstring, against
SplitMix64's published outputs, and against golden values; then for uniformity and independence.
"""
import random

import numpy as np
import pytest
import torch

from datasets import keyed
from datasets.keyed import KeyedItems

M64 = 2**64 - 1


def _splitmix_out(z):  # SplitMix64's output function, transcribed from its definition
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def _word(seed, epoch, index, stream):
    h = 0
    for w in (seed, epoch, index, stream):
        h = _splitmix_out(((h ^ (w % 2**64)) + 0x9E3779B97F4A7C15) % 2**64)
    return h


# (seed, epoch, index, stream) -> word, computed with the transcription above
GOLDEN = {
    (0, 0, 0, 0): 0x2130748AAAC80268,
    (0, 1, 2, 3): 0x1467336EDB962514,
    (7, 3, 12345, 1): 0xFF1723B8E53D91DF,
    (2**64 - 1, 2**32, 49999, 4): 0xFE3AE611D302D237,
    (-5, 0, 0, 2): 0x6B770875C3C5C735,  # negative seeds are taken modulo 2**64
}


def test_transcription_is_splitmix64():
    # SplitMix64 seeded with 0: its first three outputs are out(k * GAMMA), k = 1, 2, 3 (published values)
    gamma = 0x9E3779B97F4A7C15
    assert [_splitmix_out(k * gamma % 2**64) for k in (1, 2, 3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_golden_words_scalar_and_vectorised():
    for key, value in GOLDEN.items():
        assert _word(*key) == value
        assert keyed.word(*key) == value
        assert keyed.words(key[0], key[1], [key[2]], key[3]).tolist() == [value]
    assert keyed.item_seed(7, 3, 12345) == _word(7, 3, 12345, keyed.STREAM_GLOBAL) & (2**63 - 1)
    # derived draws: integer = word mod n, real = (word >> 11) / 2**53
    w = GOLDEN[(7, 3, 12345, 1)]
    assert keyed.integers(7, 3, [12345], 1, 9).tolist() == [w % 9]
    assert keyed.units(7, 3, [12345], 1).tolist() == [(w >> 11) / 2**53]


def test_vectorised_equals_scalar_on_many_keys():
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, 1, 2**31, 2**63 - 1], rng.integers(0, 2**40, 300)])
    epochs = rng.integers(0, 500, len(idx))
    for seed in (0, 3, 2**63 + 11, -1):
        for stream in range(5):
            got = keyed.words(seed, epochs, idx, stream).tolist()
            assert got == [_word(seed, int(e), int(i), stream) for e, i in zip(epochs, idx)]
    assert keyed.words(5, 2, [7, 8], 1).tolist() == [_word(5, 2, 7, 1), _word(5, 2, 8, 1)]  # one epoch for all


def test_draws_are_uniform_and_uncorrelated():
    n = 100_000
    idx = np.arange(n)
    flips = keyed.units(0, 1, idx, keyed.STREAM_FLIP) < 0.5
    assert abs(flips.mean() - 0.5) < 4 * 0.5 / np.sqrt(n)
    rows = keyed.integers(0, 1, idx, keyed.STREAM_CROP_ROW, 9)
    counts = np.bincount(rows, minlength=9)
    chi2 = ((counts - n / 9) ** 2 / (n / 9)).sum()
    assert chi2 < 30  # 8 degrees of freedom: p < 3e-4 beyond 30
    u = keyed.units(0, 1, idx, keyed.STREAM_CROP_ROW)
    bound = 4 / np.sqrt(n)
    pairs = {"consecutive indices": (u[:-1], u[1:]),
             "consecutive epochs": (u, keyed.units(0, 2, idx, keyed.STREAM_CROP_ROW)),
             "consecutive seeds": (u, keyed.units(1, 1, idx, keyed.STREAM_CROP_ROW)),
             "row vs column": (u, keyed.units(0, 1, idx, keyed.STREAM_CROP_COL)),
             "row vs flip": (u, keyed.units(0, 1, idx, keyed.STREAM_FLIP))}
    for name, (a, b) in pairs.items():
        assert abs(np.corrcoef(a, b)[0, 1]) < bound, name
    joint = np.mean(flips[:-1] & flips[1:])  # P(flip i and flip i+1) = 1/4
    assert abs(joint - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)
    bits = (keyed.words(0, 1, idx[:20000], 0)[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.02)  # every bit of the word is balanced


class _Draws(torch.utils.data.Dataset):
    """Items: the keyed draws seen inside __getitem__, and one draw of each global generator."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return (keyed.item_integer(keyed.STREAM_CROP_ROW, 9), keyed.item_unit(keyed.STREAM_FLIP),
                float(torch.rand(())), float(np.random.rand()), random.random())


def test_keyed_items_activate_the_key_and_seed_the_globals():
    items = KeyedItems(_Draws(), seed=3)
    row, unit, t, n, p = items[(2, 5)]
    assert row == _word(3, 2, 5, keyed.STREAM_CROP_ROW) % 9
    assert unit == (_word(3, 2, 5, keyed.STREAM_FLIP) >> 11) / 2**53
    s = _word(3, 2, 5, keyed.STREAM_GLOBAL) & (2**63 - 1)
    assert t == float(torch.rand((), generator=torch.Generator().manual_seed(s)))
    assert n == float(np.random.RandomState(s % 2**32).rand()) and p == random.Random(s).random()
    assert items[5] == items[(0, 5)]
    assert keyed.active_key() is None  # reset after the item
    # in a DataLoader worker (no state restore) the items are the same
    loader = torch.utils.data.DataLoader(items, batch_size=None, sampler=[(2, 5), (0, 5)], num_workers=1)
    assert [tuple(float(v) for v in x) for x in loader] == [items[(2, 5)], items[(0, 5)]]


def test_keyed_transforms_fall_back_to_torch_outside_a_key():
    from datasets.transforms import KeyedHorizontalFlip, KeyedRandomCrop

    x = torch.arange(2 * 6 * 6, dtype=torch.float32).view(2, 6, 6)
    crop, flip = KeyedRandomCrop(4, padding=1), KeyedHorizontalFlip()
    torch.manual_seed(0)
    a = [flip(crop(x)) for _ in range(20)]
    torch.manual_seed(0)
    b = [flip(crop(x)) for _ in range(20)]
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and len({tuple(v.flatten().tolist()) for v in a}) > 5
    with pytest.raises(ValueError, match="larger than input"):
        KeyedRandomCrop(9)(x)


def test_keyed_crop_and_flip_take_the_rule_offsets():
    from datasets.transforms import KeyedHorizontalFlip, KeyedRandomCrop

    class One(torch.utils.data.Dataset):
        def __init__(self, transform):
            self.image, self.transform = torch.rand(3, 6, 7), transform

        def __len__(self):
            return 100

        def __getitem__(self, i):
            return self.transform(self.image)

    import torchvision.transforms as T

    ds = One(T.Compose([KeyedRandomCrop((4, 5), padding=(2, 1)), KeyedHorizontalFlip(p=0.3)]))
    padded = torch.nn.functional.pad(ds.image, (2, 2, 1, 1))  # [3, 8, 11]
    items, seen = KeyedItems(ds, seed=9), set()
    for i in range(100):
        top, left = _word(9, 4, i, keyed.STREAM_CROP_ROW) % 5, _word(9, 4, i, keyed.STREAM_CROP_COL) % 7
        want = padded[:, top:top + 4, left:left + 5]
        flip = (_word(9, 4, i, keyed.STREAM_FLIP) >> 11) / 2**53 < 0.3
        assert torch.equal(items[(4, i)], want.flip(-1) if flip else want), i
        seen.add((top, left, flip))
    assert len(seen) > 25 and {f for *_, f in seen} == {False, True}
