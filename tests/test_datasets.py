"""datasets/: CIFAR from real-format pickles, ImageFolder trees, digits, validation splits, errors.

Expected values come from the published constants, hand arithmetic, scikit-learn and the files the
tests write themselves, never from the package's own output.
"""
import inspect
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import datasets

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


# ---------------------------------------------------------------- CIFAR files in the real format

class _Py2Str(bytes):
    """A Python 2 `str`: what the keys and names in the real CIFAR pickles are."""


class _Py2Pickler(pickle._Pickler):
    """Writes `_Py2Str` with the (SHORT_)BINSTRING opcodes a Python 2 pickler used."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _dump(path, entries):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump({_Py2Str(k.encode()): v for k, v in entries.items()})


def _images(n, rng):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _write_cifar100(root, n_train=50, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = _images(n, rng)
        fine = [int(v) for v in np.arange(n) % 100]
        _dump(folder / split, {"data": data, "fine_labels": fine, "coarse_labels": [v // 5 for v in fine],
                               "filenames": [_Py2Str(b"img_%d.png" % i) for i in range(n)],
                               "batch_label": _Py2Str(split.encode())})
        out[split] = (data, fine)
    _dump(folder / "meta", {"fine_label_names": [_Py2Str(b"c%d" % i) for i in range(100)],
                            "coarse_label_names": [_Py2Str(b"s%d" % i) for i in range(20)]})
    return out


def _write_cifar10(root, per_batch=10, n_test=10, seed=1):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_data, train_labels = [], []
    for b in range(1, 6):
        data = _images(per_batch, rng)
        labels = [int(v) for v in (np.arange(per_batch) + b) % 10]
        _dump(folder / f"data_batch_{b}", {"data": data, "labels": labels,
                                           "batch_label": _Py2Str(b"training batch %d of 5" % b)})
        train_data.append(data)
        train_labels += labels
    test = _images(n_test, rng)
    _dump(folder / "test_batch", {"data": test, "labels": [int(v) for v in np.arange(n_test) % 10]})
    _dump(folder / "batches.meta", {"label_names": [_Py2Str(b"c%d" % i) for i in range(10)]})
    return {"train": (np.concatenate(train_data), train_labels)}


@pytest.fixture
def skip_md5(monkeypatch):
    """torchvision checks the md5 of every CIFAR file against the official archive on each load, so
    files written by a test can never pass. Only that check is replaced (by "the file exists");
    the rest of torchvision's loading path runs unchanged."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def _hand_normalized(row, pixel, mean, std):
    """Normalized value of one pixel (y, x) from a raw CIFAR row (R plane, G plane, B plane)."""
    y, x = pixel
    rgb = [row[c * 1024 + y * 32 + x] for c in range(3)]
    return torch.tensor([(v / 255.0 - m) / s for v, m, s in zip(rgb, mean, std)], dtype=torch.float32)


def test_written_pickles_have_the_real_layout(tmp_path):
    _write_cifar100(tmp_path)
    with open(tmp_path / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # how the CIFAR page documents reading them
    assert {b"data", b"fine_labels", b"coarse_labels"} <= set(entry)
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (50, 3072)


def test_cifar100_items_and_normalization(tmp_path, skip_md5):
    raw = _write_cifar100(tmp_path)
    bundle = datasets.build_datasets("cifar100", root=tmp_path, train_augment=False)
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (100, 3, 32)
    assert bundle.val is None and len(bundle.train) == 50 and len(bundle.test) == 20
    for split, ds in (("train", bundle.train), ("test", bundle.test)):
        data, fine = raw[split]
        for i in (0, 7, len(ds) - 1):
            image, target, index = ds[i]
            assert isinstance(target, int) and isinstance(index, int)
            assert index == i and target == fine[i]
            assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
            for pixel in ((0, 0), (5, 17), (31, 31)):
                expect = _hand_normalized(data[i], pixel, CIFAR100_MEAN, CIFAR100_STD)
                assert torch.allclose(image[:, pixel[0], pixel[1]], expect, atol=1e-5)


def test_cifar100_train_augmentation_shape_and_content(tmp_path, skip_md5):
    raw = _write_cifar100(tmp_path)
    bundle = datasets.build_datasets("cifar100", root=tmp_path)  # train_augment on by default
    torch.manual_seed(0)
    image, target, index = bundle.train[3]
    assert image.shape == (3, 32, 32) and (target, index) == (raw["train"][1][3], 3)
    # a crop of the zero-padded, maybe mirrored image: every value is a normalized source pixel or padding
    data = raw["train"][0][3].reshape(3, 32, 32)
    for c in range(3):
        allowed = np.append(np.unique(data[c]), 0) / 255.0
        allowed = (allowed - CIFAR100_MEAN[c]) / CIFAR100_STD[c]
        gaps = np.abs(image[c].numpy().reshape(-1, 1) - allowed.reshape(1, -1)).min(axis=1)
        assert gaps.max() < 1e-5


def test_cifar10_loads_all_five_batches(tmp_path, skip_md5):
    raw = _write_cifar10(tmp_path)
    bundle = datasets.build_datasets("cifar10", root=str(tmp_path), train_augment=False)
    assert (bundle.num_classes, len(bundle.train), len(bundle.test)) == (10, 50, 10)
    data, labels = raw["train"]
    for i in (0, 12, 49):  # rows from the first, second and last batch files
        image, target, index = bundle.train[i]
        assert (target, index) == (labels[i], i)
        expect = _hand_normalized(data[i], (4, 9), CIFAR10_MEAN, CIFAR10_STD)
        assert torch.allclose(image[:, 4, 9], expect, atol=1e-5)


def test_cifar_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        datasets.build_datasets("cifar100", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar-100-python") in message and "--download" in message
    assert "\n" not in message
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        datasets.build_datasets("cifar10", root=tmp_path)


def test_cifar_files_failing_md5_are_reported(tmp_path):
    _write_cifar100(tmp_path)  # real layout, but not the official bytes: the md5 check fails
    with pytest.raises(FileNotFoundError, match="md5.*--download"):
        datasets.build_datasets("cifar100", root=tmp_path)


def test_cifar_val_fraction_keeps_original_indices(tmp_path, skip_md5):
    raw = _write_cifar100(tmp_path, n_train=200)
    bundle = datasets.build_datasets("cifar100", root=tmp_path, val_fraction=0.25)
    assert len(bundle.train) == 150 and len(bundle.val) == 50
    data, fine = raw["train"]
    for i in range(0, 50, 7):
        image, target, index = bundle.val[i]
        assert target == fine[index]
        # served with the eval transform: exactly the normalized original image
        expect = _hand_normalized(data[index], (10, 20), CIFAR100_MEAN, CIFAR100_STD)
        assert torch.allclose(image[:, 10, 20], expect, atol=1e-5)


# ---------------------------------------------------------------- ImageFolder

def _write_tree(root, splits=("train", "val"), classes=("cat", "dog"), per_class=3, size=(20, 24)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(per_class):
                pixels = rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")


def test_cinic10_tree(tmp_path):
    from datasets.folders import CINIC10_MEAN, CINIC10_STD

    _write_tree(tmp_path, splits=("train", "valid", "test"), classes=("airplane", "cat"), size=(32, 32))
    bundle = datasets.build_datasets("cinic10", root=tmp_path, train_augment=False)
    assert (len(bundle.train), len(bundle.test), bundle.num_classes, bundle.image_size) == (6, 6, 2, 32)
    image, target, index = bundle.test[4]
    assert image.shape == (3, 32, 32) and (target, index) == (1, 4)
    from PIL import Image

    raw = np.asarray(Image.open(tmp_path / "test" / "cat" / "1.png"), dtype=np.float32) / 255.0
    expected = (raw[0, 0, 0] - CINIC10_MEAN[0]) / CINIC10_STD[0]  # first pixel, red channel, by hand
    assert abs(float(image[0, 0, 0]) - expected) < 1e-5
    with pytest.raises(FileNotFoundError, match="CINIC-10 folder .*test.* does not exist"):
        datasets.build_datasets("cinic10", root=tmp_path / "train")


def test_imagefolder_tree(tmp_path):
    _write_tree(tmp_path)
    bundle = datasets.build_datasets("imagenet", root=tmp_path, image_size=16)
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (2, 3, 16)
    assert len(bundle.train) == 6 and len(bundle.test) == 6 and bundle.val is None
    assert [bundle.test[i][1] for i in range(6)] == [0, 0, 0, 1, 1, 1]  # classes in sorted folder order
    for ds in (bundle.train, bundle.test):
        image, target, index = ds[4]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert (target, index) == (1, 4)
    split = datasets.build_datasets("imagenet", root=tmp_path, image_size=16, val_fraction=0.5)
    val_targets = sorted(split.val[i][1] for i in range(len(split.val)))
    assert len(split.train) == 3 and len(split.val) == 3 and set(val_targets) == {0, 1}


@pytest.mark.parametrize("case", ["no_root", "no_val", "empty_train", "class_without_images"])
def test_imagefolder_errors_name_the_layout(tmp_path, case):
    if case == "no_val":
        _write_tree(tmp_path, splits=("train",))
    elif case == "empty_train":
        _write_tree(tmp_path, splits=("val",))
        (tmp_path / "train").mkdir()
    elif case == "class_without_images":
        _write_tree(tmp_path)
        (tmp_path / "train" / "emu").mkdir()
    with pytest.raises(FileNotFoundError, match=r"<root>/train/<class>"):
        datasets.build_datasets("imagenet", root=tmp_path / ("missing" if case == "no_root" else ""))


# ---------------------------------------------------------------- digits

@pytest.fixture(scope="module")
def digits_reference():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    train_pos, test_pos = train_test_split(np.arange(len(bunch.target)), test_size=0.2,
                                           stratify=bunch.target, random_state=0)
    return bunch.images / 16.0, bunch.target, train_pos, test_pos


def test_digits_sizes_and_balance():
    bundle = datasets.build_datasets("digits")
    assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (1437, 360, 10)
    assert (bundle.in_channels, bundle.image_size) == (3, 32)
    image, target, index = bundle.test[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert isinstance(target, int) and index == 0
    counts = np.bincount(bundle.test.targets, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: about 36 of each digit


def test_digits_match_sklearn_at_native_size(digits_reference):
    pixels, labels, train_pos, test_pos = digits_reference
    bundle = datasets.build_datasets("digits", image_size=8, train_augment=False)
    mean = pixels[train_pos].mean()
    std = pixels[train_pos].std()
    assert np.allclose(bundle.mean, [mean] * 3, atol=1e-6) and np.allclose(bundle.std, [std] * 3, atol=1e-6)
    for ds, pos in ((bundle.train, train_pos), (bundle.test, test_pos)):
        for i in (0, 100, 359):
            image, target, index = ds[i]
            assert target == labels[pos[i]] and index == i
            expect = torch.from_numpy((pixels[pos[i]] - mean) / std).float()
            for c in range(3):
                assert torch.allclose(image[c], expect, atol=1e-5)


def test_digits_train_augmentation_keeps_shape():
    bundle = datasets.build_datasets("digits", image_size=24)
    torch.manual_seed(0)
    image, target, index = bundle.train[10]
    assert image.shape == (3, 24, 24) and index == 10


# ---------------------------------------------------------------- validation split, bad input

def _indices(ds):
    return [ds[i][2] for i in range(len(ds))]


def test_val_fraction_disjoint_fixed_stratified():
    """The held-out part was drawn with the run's seed, so two seeds (or two methods run under other seeds)
    selected their checkpoints on different images; it is now keyed by `SPLIT_KEY` alone."""
    first = datasets.build_datasets("digits", val_fraction=0.2, image_size=8)
    again = datasets.build_datasets("digits", val_fraction=0.2, image_size=8, train_augment=False)
    train, val = _indices(first.train), _indices(first.val)
    assert len(val) == round(0.2 * 1437) and len(train) + len(val) == 1437
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(1437))
    assert val == _indices(again.val) and train == _indices(again.train)
    assert "seed" not in inspect.signature(datasets.build_datasets).parameters
    counts = np.bincount([first.val[i][1] for i in range(len(first.val))], minlength=10)
    assert counts.min() >= 27 and counts.max() <= 30  # about 28.7 of each digit
    # val uses the eval transform: identical to the un-augmented training image of that index
    plain = datasets.build_datasets("digits", image_size=8, train_augment=False)
    image, target, index = first.val[3]
    assert torch.equal(image, plain.train[index][0]) and target == plain.train[index][1]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "half", None])
def test_bad_val_fraction(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        datasets.build_datasets("digits", val_fraction=bad)


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match="unknown data set 'mnist'; choose one of: " + ", ".join(datasets.dataset_names())):
        datasets.build_datasets("mnist")
    with pytest.raises(ValueError, match="image_size"):
        datasets.build_datasets("digits", imgsize=32)


# ---------------------------------------------------------------- every registered data set

def _cifar_files(writer):
    def write(root):
        writer(root)
        return {}
    return write


def _tree_files(splits, size):
    def write(root):
        _write_tree(root, splits=splits, size=size, per_class=4)
        return {"image_size": 16} if size != (32, 32) else {}
    return write


# Files in each data set's on-disk format, written by the test (no download). A data set registered
# without an entry here is reported as a skip naming what to add.
TEST_FILES = {
    "cifar100": _cifar_files(_write_cifar100),
    "cifar10": _cifar_files(_write_cifar10),
    "cinic10": _tree_files(("train", "test"), (32, 32)),
    "imagenet": _tree_files(("train", "val"), (20, 24)),
    "digits": lambda root: {"image_size": 8},
}


@pytest.mark.parametrize("name", datasets.dataset_names())
def test_every_registered_data_set_keeps_the_contract(name, tmp_path, skip_md5):
    from contracts import check_bundle_contract
    from engine.config import RECIPES

    if name not in TEST_FILES:
        pytest.skip(f"no test files for data set {name}: add a writer to TEST_FILES in tests/test_datasets.py")
    options = TEST_FILES[name](tmp_path)
    bundle = datasets.build_datasets(name, root=tmp_path, val_fraction=0.25, **options)
    check_bundle_contract(bundle, name, RECIPES)
