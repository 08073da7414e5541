"""engine: configuration, seeding, checkpoints, and the training loop on real (tiny) data.

The loop is exercised with a small stand-in network on the digits data set (16x16), so these tests
depend only on `datasets` and `distiller`, not on the model zoo.
"""
import argparse
import math
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from datasets import build_datasets
from distiller import Distiller, get_distiller
from models.loading import state_dict_differences
from topkd_io import load_checkpoint, save_torch
from topkd_io import TopKDError, run_cli
from engine.config import add_data_args, add_training_args, parse_config, teacher_run_name
from engine.stage import get_rng_state, seed_everything, set_rng_state
from engine.trainer import Trainer
from models.loading import arch_candidates, infer_num_classes
from helpers import DigitsNet



def make_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="tiny")
    add_data_args(p)
    add_training_args(p)
    return p


def make_cfg(run_dir, *extra):
    argv = ["--dataset", "digits", "--epochs", "3", "--batch_size", "64", "--lr", "0.1",
            "--lr_decay_epochs", "2", "--num_workers", "0", "--device", "cpu", "--deterministic",
            "--run_dir", str(run_dir), *extra]
    cfg = parse_config(make_parser(), argv)
    cfg.arch, cfg.num_classes = "tiny", 10
    return cfg


@pytest.fixture(scope="module")
def digits():
    return build_datasets("digits", "unused", image_size=16)


def train(cfg, data, distiller_cls=None):
    seed_everything(cfg.seed, cfg.deterministic)
    model = DigitsNet()
    distiller = (distiller_cls or get_distiller("vanilla"))(model)
    trainer = Trainer(distiller, data.train, data.test, cfg, cfg.run_dir, val_set=data.val, resume=cfg.resume)
    return trainer.fit(), model


# ---------------------------------------------------------------- config
def test_recipe_defaults_and_precedence(tmp_path):
    p = make_parser()
    cfg = parse_config(p, ["--dataset", "cifar100"])
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (0.05, 5e-4, 64, 240)
    assert cfg.lr_decay_epochs == [150, 180, 210] and cfg.momentum == 0.9 and cfg.lr_decay_rate == 0.1
    assert parse_config(p, ["--model", "MobileNetV2"]).lr == 0.01
    assert parse_config(p, ["--model", "ShuffleV1", "--lr", "0.03"]).lr == 0.03
    cfg = parse_config(p, ["--dataset", "imagenet"])
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs, cfg.lr_decay_epochs) == (0.1, 1e-4, 256, 100, [30, 60, 90])
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 0.2\nepochs: 7\nlr_decay_epochs: '3,5'\nseed: 4\n")
    cfg = parse_config(p, ["--config", str(yml), "--epochs", "9", "--learning_rate", "0.3"])
    assert (cfg.lr, cfg.epochs, cfg.lr_decay_epochs, cfg.seed, cfg.batch_size) == (0.3, 9, [3, 5], 4, 64)
    assert teacher_run_name("resnet56", "cifar100", 240, 64, 0.05, 5e-4, 5) == \
        "resnet56_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_5"  # the official TopKD naming


@pytest.mark.parametrize("argv, words", [
    (["--epochs", "0"], "--epochs"), (["--batch_size", "-1"], "--batch_size"), (["--lr", "0"], "--lr"),
    (["--momentum", "1.5"], "--momentum"), (["--val_fraction", "1"], "--val_fraction")])
def test_bad_values_are_value_errors(argv, words):
    with pytest.raises(ValueError, match=words):
        parse_config(make_parser(), argv)


def test_bad_yaml(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"c.yaml has unknown option\(s\) learning_rat"):
        parse_config(make_parser(), ["--config", str(yml)])
    with pytest.raises(FileNotFoundError):
        parse_config(make_parser(), ["--config", str(tmp_path / "none.yaml")])


# ---------------------------------------------------------------- cli / seed
def test_run_cli_exit_codes(capsys, monkeypatch):
    def bad():
        raise TopKDError("something\nwrong")

    with pytest.raises(SystemExit) as e:
        run_cli(bad)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: something wrong"

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        run_cli(interrupted)
    assert e.value.code == 130 and "--resume" in capsys.readouterr().err
    assert run_cli(lambda: None) == 0


def test_rng_state_round_trip(tmp_path):
    seed_everything(5)
    state = get_rng_state()
    save_torch({"rng": state}, tmp_path / "r.pth")
    first = (random.random(), float(np.random.rand()), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "r.pth")["rng"])
    second = (random.random(), float(np.random.rand()), torch.rand(3))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])


# ---------------------------------------------------------------- checkpoints
def test_atomic_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pth"
    save_torch({"epoch": 1, "w": torch.arange(5)}, path)
    before = path.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        f.write(b"partial bytes")  # something reaches the disk, then the write dies
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_torch({"epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["m.pth"]  # no temporary file left behind


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "none.pth")
    good = tmp_path / "good.pth"
    save_torch({"model": DigitsNet().state_dict()}, good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot be read .its archive is truncated or damaged"):
        load_checkpoint(bad)


def test_state_dict_helpers():
    sd = DigitsNet(num_classes=7).state_dict()
    assert infer_num_classes(sd) == 7
    diffs = state_dict_differences(DigitsNet(num_classes=10).state_dict(), sd)
    assert len(diffs) == 1 and "fc.weight (7, 32) vs (10, 32)" in diffs[0]
    path = "/x/save_t_models/wrn_40_2_cifar100_lr_0.05_decay_0.0005_trial_0/ckpt_epoch_240.pth"
    assert arch_candidates(path) == ["wrn_40_2"]
    assert arch_candidates("/x/resnet8x4_vanilla/ckpt.pth") == ["resnet8x4"]
    assert arch_candidates("/x/run/ShuffleV1_best.pth") == ["ShuffleV1"]


# ---------------------------------------------------------------- the loop
def test_trains_digits_and_writes_run_folder(tmp_path, digits, capsys):
    cfg = make_cfg(tmp_path / "run", "--epochs", "5", "--lr_decay_epochs", "4")
    summary, _ = train(cfg, digits)
    out = capsys.readouterr().out
    # measured: 93.9% test top-1 after 5 epochs with this stand-in (seed 0); chance is 10%
    assert summary["best_acc"] >= 85.0 and summary["last_acc"] >= 85.0
    assert summary["selected_by"] == "test" and "model selection" in out and "epoch 5/5" in out
    assert summary["seconds_per_epoch"] > 0
    files = os.listdir(tmp_path / "run")
    assert {"tiny_best.pth", "tiny_last.pth", "config.yaml", "tb"} <= set(files)
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "run" / "tb"))
    last = load_checkpoint(tmp_path / "run" / "tiny_last.pth")
    assert last["epoch"] == 5 and last["arch"] == "tiny" and last["num_classes"] == 10
    assert {"optimizer", "scheduler", "scaler", "rng", "config", "distiller", "best_epoch"} <= set(last)
    assert last["scheduler"]["last_epoch"] == 5 and math.isclose(last["optimizer"]["param_groups"][0]["lr"], 0.01)
    best = load_checkpoint(tmp_path / "run" / "tiny_best.pth")
    assert best["epoch"] == summary["best_epoch"] and math.isclose(best["best_acc"], summary["best_acc"])


def test_validation_split_selects_on_val(tmp_path, capsys):
    data = build_datasets("digits", "unused", image_size=16, val_fraction=0.2)
    cfg = make_cfg(tmp_path / "run", "--epochs", "1", "--val_fraction", "0.2")
    summary, _ = train(cfg, data)
    assert summary["selected_by"] == "val" and summary["best_val_acc"] is not None
    assert "by validation top-1" in capsys.readouterr().out


def test_selected_epoch_comes_from_validation_only(tmp_path, monkeypatch):
    """Scripted accuracies: test top-1 peaks at epoch 2, validation top-1 at epoch 3. The selected epoch is 3,
    its test top-1 is reported, and the summary keeps every epoch's test and validation top-1."""
    scripted = {"test": [50.0, 90.0, 60.0], "val": [70.0, 40.0, 80.0]}

    def evaluate(self, loader):
        top1 = scripted["val" if loader is self.val_loader else "test"][len(self.per_epoch["test_top1"])]
        return {"loss": 1.0, "top1": top1, "top5": 100.0}

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    data = build_datasets("digits", "unused", image_size=16, val_fraction=0.2, train_fraction=0.2)
    summary, _ = train(make_cfg(tmp_path / "run", "--val_fraction", "0.2"), data)
    assert summary["per_epoch"] == {"test_top1": scripted["test"], "val_top1": scripted["val"]}
    assert (summary["best_epoch"], summary["best_val_acc"], summary["best_acc"]) == (3, 80.0, 60.0)
    assert load_checkpoint(tmp_path / "run" / "tiny_best.pth")["epoch"] == 3


def test_resume_is_bit_exact(tmp_path, digits):
    full, model_full = train(make_cfg(tmp_path / "full"), digits)
    train(make_cfg(tmp_path / "part", "--epochs", "2"), digits)
    resumed, model_resumed = train(make_cfg(tmp_path / "part", "--resume"), digits)
    assert resumed["epochs_run"] == 1
    for (name, a), b in zip(model_full.state_dict().items(), model_resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # the summary (per-epoch history included) equals the uninterrupted run's, but for timings and paths
    differ = ("epochs_run", "seconds_per_epoch", "train_seconds_per_epoch", "best_checkpoint", "last_checkpoint")
    assert len(full["per_epoch"]["test_top1"]) == 3 and "val_top1" not in full["per_epoch"]
    assert {k: v for k, v in resumed.items() if k not in differ} == {k: v for k, v in full.items() if k not in differ}


def test_resume_without_checkpoint(tmp_path, digits):
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(make_cfg(tmp_path / "empty", "--resume"), digits)


class NaNAtStep(Distiller):
    """Cross-entropy, plus a term that turns NaN at global step `bad_step`."""

    bad_step = 25  # 23 steps per epoch on digits with batch 64: step 2 of epoch 2
    watch = None  # checkpoint path whose bytes are recorded when the NaN appears
    snapshot = None

    def __init__(self, student, teacher=None):
        super().__init__(student)
        self.calls = 0

    def forward_train(self, image, target, **batch):
        self.calls += 1
        if self.calls == self.bad_step:
            NaNAtStep.snapshot = open(self.watch, "rb").read()
        logits = self.student(image)
        extra = torch.tensor(float("nan") if self.calls == self.bad_step else 0.0)
        return logits, {"loss_ce": nn.functional.cross_entropy(logits, target), "loss_bad": extra}


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path, digits):
    cfg = make_cfg(tmp_path / "run")
    last = tmp_path / "run" / "tiny_last.pth"
    NaNAtStep.watch = last
    with pytest.raises(FloatingPointError) as err:
        train(cfg, digits, NaNAtStep)
    message = str(err.value)
    assert "epoch 2, step 2" in message and "loss_bad = nan" in message and str(last) in message
    assert last.read_bytes() == NaNAtStep.snapshot  # untouched since the NaN appeared
    assert load_checkpoint(last)["epoch"] == 1


def test_batch_fields_reach_the_distiller(tmp_path):
    seen = {}

    class Spy(Distiller):
        def forward_train(self, image, target, **batch):
            seen.update({k: v.shape for k, v in batch.items()})
            logits = self.student(image)
            return logits, {"loss_ce": nn.functional.cross_entropy(logits, target)}

    class WithPI(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.rand(3, 8, 8), i % 10, i, torch.rand(6, 5)

    cfg = make_cfg(tmp_path / "run", "--epochs", "1", "--batch_size", "4")
    fields = ("image", "target", "index", "pi")  # what the data declares (DataBundle.fields)
    Trainer(Spy(DigitsNet()), WithPI(), WithPI(), cfg, cfg.run_dir, fields=fields).fit()
    assert seen == {"index": (4,), "pi": (4, 6, 5)}
    with pytest.raises(ValueError, match="with 2 to 3 entries"):  # a fourth entry the data did not declare
        Trainer(Spy(DigitsNet()), WithPI(), WithPI(), cfg, cfg.run_dir).fit()

    class NeedsPI(Spy):
        batch_fields = ("pi",)

    with pytest.raises(ValueError, match="NeedsPI needs the batch field.s. pi, but the training data yields only "
                                         "image, target, index"):
        Trainer(NeedsPI(DigitsNet()), WithPI(), WithPI(), cfg, cfg.run_dir)
