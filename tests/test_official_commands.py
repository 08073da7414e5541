"""The teacher command lines of ``reference_dir/official_commands.txt`` (official TopKD and RepDistiller users),
run verbatim on a tiny fake CIFAR-100 in torchvision's on-disk format, one optimisation step each
(``TOPKD_MAX_STEPS=1``, a test-only cap)."""
import os
import shlex

import pytest
import yaml

import train_teacher
from engine.checkpoint import load_model
from engine.trainer import MAX_STEPS_ENV
from test_datasets import _write_cifar100  # torchvision's pickle layout, written by hand


def official_lines(reference_dir, script):
    """Every non-comment line of official_commands.txt that runs ``script`` -> its argument list."""
    lines = (reference_dir / "official_commands.txt").read_text().splitlines()
    out = []
    for line in lines:
        tokens = shlex.split(line, comments=True)
        at = next((i for i, t in enumerate(tokens) if os.path.basename(t) == script), None)
        if at is not None:
            out.append(tokens[at + 1:])
    return out


@pytest.fixture()
def fake_tree(tmp_path, monkeypatch):
    """A working directory holding ./data/cifar-100-python (one training image per class, 8 test images)."""
    import torchvision.datasets.cifar as tv_cifar

    # torchvision compares every file's md5 with the official archive; only that check is replaced
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    _write_cifar100(tmp_path / "data", n_train=100, n_test=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(MAX_STEPS_ENV, "1")
    return tmp_path


def test_teacher_lines_are_listed(reference_dir):
    lines = official_lines(reference_dir, "train_teacher.py")
    archs = [args[args.index("--model") + 1] for args in lines]
    assert archs == ["resnet56", "wrn_40_2", "resnet56", "resnet110", "resnet32x4", "vgg13", "ResNet50"]


# the two largest teachers (ResNet50, resnet32x4) take most of this file's time on a CPU: marked slow
@pytest.mark.parametrize("index", [0, 1, 2, 3, pytest.param(4, marks=pytest.mark.slow), 5,
                                   pytest.param(6, marks=pytest.mark.slow)])
def test_official_teacher_line_runs(reference_dir, fake_tree, run_stage, index):
    args = official_lines(reference_dir, "train_teacher.py")[index]
    code, out, err = run_stage(train_teacher.main, args)
    assert code == 0, err
    arch = args[args.index("--model") + 1]
    trial = args[args.index("--trial") + 1] if "--trial" in args else "0"
    run_dir = fake_tree / "save_t_models" / f"{arch}_cifar100_lr_0.05_decay_0.0005_trial_{trial}"
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    # the official defaults and flags as typed: 240 epochs, batch 64, milestones 150 180 210
    assert (cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["lr_decay_epochs"]) == (240, 64, 0.05, [150, 180, 210])
    if "--num_workers=1" in args:
        assert cfg["num_workers"] == 1
    assert "epoch 1/240" in out and f"stopping after 1 steps ({MAX_STEPS_ENV}=1)" in out
    model, ckpt = load_model(str(run_dir / f"{arch}_best.pth"))  # architecture read back from the run folder
    assert ckpt["arch"] == arch and ckpt["num_classes"] == 100 and ckpt["epoch"] == 1


def test_teacher_flags_official_forms(tmp_path, run_stage):
    from engine.config import parse_config

    parser = train_teacher.build_parser()
    for milestones in (["150", "180", "210"], ["150,180,210"]):  # TopKD's nargs form, RepDistiller's string
        cfg = parse_config(parser, ["--lr_decay_epochs", *milestones, "-t", "3", "--model", "ShuffleV1"])
        assert cfg.lr_decay_epochs == [150, 180, 210] and cfg.trial == 3
        assert cfg.lr == 0.01  # the small-network learning rate follows RepDistiller's names too
    yml = tmp_path / "c.yaml"
    yml.write_text("lr_decay_epochs: [30, 60]\n")
    assert parse_config(parser, ["--config", str(yml)]).lr_decay_epochs == [30, 60]
    with pytest.raises(ValueError, match="--lr_decay_epochs must be integers"):
        parse_config(parser, ["--lr_decay_epochs", "150", "x"])
    # architecture names are checked before any data loads: an alias passes, a near miss does not
    empty = ["--dataset", "cifar100", "--data_root", str(tmp_path / "none"), "--device", "cpu"]
    code, _, err = run_stage(train_teacher.main, ["--model", "MobileNetV2"] + empty)
    assert code == 2 and "cifar-100-python" in err
    code, _, err = run_stage(train_teacher.main, ["--model", "mobilenetV2"] + empty)
    assert code == 2 and "unknown architecture 'mobilenetV2' (--model)" in err and "cifar-100" not in err
