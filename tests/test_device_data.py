"""--data_on_device (datasets.device_data): the device path's batches against the CPU DataLoader path's.

The reference is the CPU path itself as the trainer builds it (datasets.transforms' KeyedRandomCrop/
KeyedHorizontalFlip and torchvision's ToTensor/Normalize, one item at a time under datasets.keyed.KeyedItems);
the device path evaluates the same keyed rule for whole batches and must give the same images (so the same
crops and flips), targets, indices and CRD negatives. The rule itself is tested in test_keyed.py.
Here the device is the CPU; benchmarks/gpu_checks.sh runs the CUDA variant.
"""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from datasets import build_datasets
from distiller.crd import ContrastSample
from datasets.device_data import DeviceLoader, DeviceView
from datasets.keyed import KeyedItems, KeyedSampler

from test_datasets import _write_cifar100, skip_md5  # noqa: F401  (fixture)
from helpers import DigitsNet as TinyNet
from test_engine import make_cfg

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _train_keys(n, epoch, seed, world=1, rank=0):
    sampler = KeyedSampler(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed))
    sampler.set_epoch(epoch)
    return sampler


def _cpu_batches(dataset, sampler, batch_size):
    return list(DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0))


def _assert_same(cpu_batches, dev_batches):
    assert len(cpu_batches) == len(dev_batches)
    for a, b in zip(cpu_batches, dev_batches):
        if isinstance(a, dict):
            assert set(a) == set(b)
            a, b = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
        for x, y in zip(a, b):
            y = y.cpu()
            assert x.dtype == y.dtype and x.shape == y.shape
            if x.is_floating_point():
                torch.testing.assert_close(y, x, rtol=0, atol=1e-6)
            else:
                assert torch.equal(x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_digits_train_batches_equal_cpu_path(device):
    data = build_datasets("digits", "unused", image_size=16)
    for seed, epoch in ((0, 1), (5, 7)):
        keyed = KeyedItems(data.train, seed)
        sampler = _train_keys(len(data.train), epoch, seed)
        cpu = _cpu_batches(keyed, sampler, 64)
        dev = list(DeviceLoader(keyed, sampler, 64, torch.device(device)))
        _assert_same(cpu, dev)
    # the draws are not trivial: several crop offsets occur (digits: no flip op)
    view = DeviceView(keyed, torch.device(device))
    top, left, flip = view.draws([(1, p) for p in range(200)])
    assert len(set(top.tolist())) == 5 and len(set(left.tolist())) == 5 and not flip.any()


@pytest.mark.parametrize("device", DEVICES)
def test_cifar100_crops_flips_and_eval_equal_cpu_path(tmp_path, skip_md5, device):  # noqa: F811
    _write_cifar100(tmp_path, n_train=60, n_test=20)
    data = build_datasets("cifar100", str(tmp_path), val_fraction=0.2)  # train/val are Subsets
    dev = torch.device(device)
    keyed = KeyedItems(data.train, 3)
    for epoch in (1, 2):
        for rank in (0, 1):  # DDP sharding on indices: each rank's share matches
            sampler = _train_keys(len(data.train), epoch, 3, world=2, rank=rank)
            _assert_same(_cpu_batches(keyed, sampler, 8), list(DeviceLoader(keyed, sampler, 8, dev)))
    for split in (data.val, data.test):  # evaluation: no augmentation, plain positions
        order = list(range(len(split)))
        _assert_same(_cpu_batches(split, order, 7), list(DeviceLoader(split, order, 7, dev)))
    # random uint8 pixels: equal images mean equal crops and flips; both flip outcomes and many offsets occur
    view = DeviceView(keyed, dev)
    top, left, flip = view.draws([(1, p) for p in range(48)])
    assert flip.any() and not flip.all() and len(set(zip(top.tolist(), left.tolist()))) > 10


def test_crd_negatives_equal_cpu_path():
    data = build_datasets("digits", "unused", image_size=8, val_fraction=0.1)
    for mode in ("exact", "relax"):
        keyed = KeyedItems(ContrastSample(data.train, k=50, mode=mode), 11)
        sampler = _train_keys(len(data.train), 4, 11)
        cpu = _cpu_batches(keyed, sampler, 100)[:3]
        dev = list(DeviceLoader(keyed, sampler, 100, torch.device("cpu")))[:3]
        _assert_same(cpu, dev)
        assert cpu[0]["contrast_idx"].shape == (100, 51)


def test_files_on_disk_and_unknown_transforms_are_refused(tmp_path):
    import torchvision.transforms as T
    from PIL import Image

    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / split / c / "x.png")
    cinic = build_datasets("cinic10", str(tmp_path))
    with pytest.raises(ValueError, match="in-memory data sets.*image files.*drop --data_on_device"):
        DeviceView(cinic.test, torch.device("cpu"))
    digits = build_datasets("digits", "unused", image_size=8)
    digits.test.transform = T.Compose([T.GaussianBlur(3), digits.test.transform])
    with pytest.raises(ValueError, match="GaussianBlur"):
        DeviceView(digits.test, torch.device("cpu"))
    with pytest.raises(ValueError, match="not keyed"):
        DeviceView(digits.train, torch.device("cpu"))  # random crops need the (seed, epoch, index) key
    unkeyed = ((T.RandomCrop(8, padding=1), "KeyedRandomCrop"), (T.RandomHorizontalFlip(), "KeyedHorizontalFlip"))
    for op, keyed_name in unkeyed:
        digits.test.transform = T.Compose([op, T.Normalize((0.5,), (0.5,))])  # draws from torch's generator
        with pytest.raises(ValueError, match=f"datasets.transforms.{keyed_name} instead of torchvision's"):
            DeviceView(digits.test, torch.device("cpu"))


def _fit(tmp_path, seed, *extra):
    from engine.trainer import Trainer
    from distiller import get_distiller
    from engine.stage import seed_everything

    data = build_datasets("digits", "unused", image_size=8)
    cfg = make_cfg(tmp_path / f"run{seed}{''.join(extra)}", "--epochs", "1", "--seed", str(seed), *extra)
    seed_everything(cfg.seed, cfg.deterministic)
    model = TinyNet()
    return Trainer(get_distiller("vanilla")(model), data.train, data.test, cfg, cfg.run_dir).fit(), model


def test_training_on_device_equals_plain_path(tmp_path, capsys):
    """Same batches and the same global random stream: on the CPU both paths train the same weights."""
    for seed in (0, 1, 2):
        plain, m_plain = _fit(tmp_path, seed)
        fast, m_fast = _fit(tmp_path, seed, "--data_on_device")
        assert plain["last_acc"] > 25  # it learns (chance is 10%)
        assert fast["last_acc"] == plain["last_acc"] and fast["best_acc"] == plain["best_acc"]
        for (name, a), b in zip(m_plain.state_dict().items(), m_fast.state_dict().values()):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)


def test_tgd_pi_caches_equal_cpu_path(tmp_path, skip_md5):  # noqa: F811
    from datasets.pi_images import attach_image_pis, build_pi_cache, cache_folder, pi_bundle, raw_images

    _write_cifar100(tmp_path, n_train=30, n_test=10)
    for split in ("train", "test"):
        build_pi_cache(raw_images("cifar100", str(tmp_path), split), cache_folder(tmp_path / "pi", "cifar100", split),
                       "cifar100", split, chunk_size=16)
    data = attach_image_pis(build_datasets("cifar100", str(tmp_path), val_fraction=0.2), tmp_path / "pi")
    dev = torch.device("cpu")
    keyed = KeyedItems(data.train, 1)
    sampler = _train_keys(len(data.train), 2, 1)
    _assert_same(_cpu_batches(keyed, sampler, 8), list(DeviceLoader(keyed, sampler, 8, dev)))
    for split in (data.val, data.test):
        order = list(range(len(split)))
        _assert_same(_cpu_batches(split, order, 4), list(DeviceLoader(split, order, 4, dev)))
    # the PI teacher's own data (PIImages, a held-out part as Subset)
    pis = pi_bundle(tmp_path / "pi", "cifar100", num_classes=100, val_fraction=0.2)
    for split in (pis.train, pis.val, pis.test):
        order = list(range(len(split)))
        _assert_same(_cpu_batches(split, order, 5), list(DeviceLoader(split, order, 5, dev)))


def test_batches_may_mix_epochs():
    """Stage 2 cuts several clouds into one batch across a pass boundary: per-key epochs, as item by item."""
    data = build_datasets("digits", "unused", image_size=8)
    keyed = KeyedItems(data.train, 4)
    keys = [(3, 10), (4, 10), (3, 11), (9, 0)]
    dev = DeviceView(keyed, torch.device("cpu")).batch(keys)
    cpu = torch.utils.data.default_collate([keyed[k] for k in keys])
    _assert_same([cpu], [dev])
    assert not torch.equal(dev[0][0], dev[0][1])  # the same image in two epochs, two crops
