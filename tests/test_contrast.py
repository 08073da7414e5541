"""CRD's class-aware negatives (distiller/crd.py) and their path through train_student."""
import pytest
import torch
from torch.utils.data import Dataset

import datasets
from distiller.crd import ContrastSample, index_targets


@pytest.fixture(scope="module")
def digits_held_out():
    """digits at 8x8 with a 20 % validation hold-out: train items report indices of the full set."""
    return datasets.build_datasets("digits", "./data", val_fraction=0.2, image_size=8)


def test_index_targets_unwraps_the_hold_out(digits_held_out):
    train = digits_held_out.train
    index, targets, space = index_targets(train)
    assert space == len(train.dataset) > len(train) == len(index)
    for pos in (0, 7, len(train) - 1):
        _, target, idx = train[pos]
        assert index[pos] == idx and targets[pos] == target


@pytest.mark.parametrize("k", [50, 5000])  # fewer than / more than the other classes' items
def test_exact_mode_negatives(digits_held_out, k):
    train = digits_held_out.train
    wrapped = ContrastSample(train, k)
    index, targets, _ = index_targets(train)
    label_of = dict(zip(index.tolist(), targets.tolist()))
    assert wrapped.index_space == len(train.dataset) and len(wrapped) == len(train)
    torch.manual_seed(0)
    for pos in (0, 11, 400):
        item = wrapped[pos]
        cidx = item["contrast_idx"]
        assert set(item) == {"image", "target", "index", "contrast_idx"}
        assert cidx.dtype == torch.int64 and cidx.shape == (k + 1,)
        assert cidx[0] == item["index"]
        negatives = cidx[1:].tolist()
        assert all(n in label_of for n in negatives), "a negative outside the training part (val or beyond)"
        assert all(label_of[n] != item["target"] for n in negatives), "a negative of the sample's own class"
        others = sum(1 for t in targets if t != item["target"])
        if k <= others:
            assert len(set(negatives)) == k, "negatives must be drawn without replacement"
        else:
            assert len(set(negatives)) > 0.5 * others  # with replacement: most of the pool shows up


def test_relax_mode_positive_and_seeding(digits_held_out):
    train = digits_held_out.train
    index, targets, _ = index_targets(train)
    label_of = dict(zip(index.tolist(), targets.tolist()))
    wrapped = ContrastSample(train, 20, mode="relax")
    torch.manual_seed(3)
    first = [wrapped[p]["contrast_idx"] for p in range(30)]
    assert all(label_of[int(c[0])] == train[p][1] for p, c in enumerate(first))
    assert any(int(c[0]) != train[p][2] for p, c in enumerate(first)), "relax never moved the positive"
    torch.manual_seed(3)
    again = [wrapped[p]["contrast_idx"] for p in range(30)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


class _NoLabels(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(3, 4, 4), 0, i


class _OneClass(_NoLabels):
    targets = [0, 0, 0, 0]


@pytest.mark.parametrize("base, kwargs, words", [
    (_NoLabels(), {}, ".targets"),
    (_OneClass(), {}, "only one class"),
    (_OneClass(), {"mode": "loose"}, "exact, relax"),
    (_OneClass(), {"k": 0}, "--nce_k"),
])
def test_bad_input(base, kwargs, words):
    with pytest.raises(ValueError, match=words):
        ContrastSample(base, **{"k": 4, **kwargs})


def test_nce_k_is_clipped_in_what_crd_returns_not_in_cfg(digits_held_out):
    """CRD's `prepare` clipped the options object itself (``cfg.nce_k = 1797``): the clipped value now comes back
    in `from_config`'s options, which the stage records, and the given options stay as given."""
    import argparse

    from distiller import get_distiller
    from helpers import TinyNet

    cfg = argparse.Namespace(nce_k=100000, crd_mode="exact")
    crd, data, options = get_distiller("crd").from_config(cfg, TinyNet(num_classes=10), TinyNet(num_classes=10),
                                                          digits_held_out)
    space = len(digits_held_out.train.dataset)  # the full training index space (the hold-out included)
    assert cfg.nce_k == 100000 and options["nce_k"] == space and data.train.k == space
    assert crd.crd.memory.nce_k == space and crd.crd.memory.n_data == space
    assert options["beta"] == 0.8 and data.fields == ("image", "target", "index", "contrast_idx")
