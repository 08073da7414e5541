"""Stage 1 end to end on the digits data set (CPU): training, run folder, checkpoints, DDP, bad inputs."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import train_teacher
from distiller import Distiller, distiller_dict
from topkd_io import load_checkpoint, save_torch
from topkd_io import safe_load
from models import load_model


ARCH = "resnet8"
RUN_NAME = f"{ARCH}_digits_lr_0.05_decay_0.0005_trial_0"
# digits at their native 8x8 keep resnet8 fast; the recipe's lr 0.05 / wd 5e-4 are kept
BASE = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", "--num_workers", "0",
        "--device", "cpu", "--deterministic", "--print_freq", "1000"]


def assert_user_error(code, err, *words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A resnet8 teacher trained for 3 epochs on 8x8 digits (shared by the tests below)."""
    save_dir = tmp_path_factory.mktemp("teachers")
    argv = BASE + ["--model", ARCH, "--epochs", "3", "--lr_decay_epochs", "2", "--save_dir", str(save_dir)]
    summary = train_teacher.main(argv)
    from pathlib import Path

    run_dir = Path(summary["best_checkpoint"]).parent
    # the official TopKD naming plus the identity hash
    assert run_dir.parent == save_dir and run_dir.name.startswith(f"{ARCH}_digits_epoch_3_bs_64_lr_0.05_decay_0.0005_trial_0-")
    return run_dir, summary


def test_teacher_learns_digits(teacher_run):
    run_dir, summary = teacher_run
    # measured: 92.5% test top-1 after 3 epochs (seed 0); chance is 10%
    assert summary["best_acc"] >= 85.0 and summary["last_acc"] >= 85.0
    files = set(os.listdir(run_dir))
    assert {f"{ARCH}_best.pth", f"{ARCH}_last.pth", "config.yaml", "tb"} <= files
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run_dir / "tb"))
    text = (run_dir / "config.yaml").read_text()
    assert "lr: 0.05" in text and "arch: resnet8" in text and "epochs: 3" in text


def test_checkpoint_loads_back(teacher_run, tmp_path):
    run_dir, summary = teacher_run
    model, arch, ckpt = load_model(run_dir / f"{ARCH}_best.pth")
    assert arch == ARCH and ckpt["arch"] == ARCH and ckpt["num_classes"] == 10 and ckpt["best_acc"] == summary["best_acc"]
    assert not model.training
    # an official-style checkpoint: {'model': sd} only, architecture read from the run-folder name
    official = tmp_path / RUN_NAME / "ckpt_epoch_240.pth"
    save_torch({"model": ckpt["model"], "best_acc": 1.0, "epoch": 240}, official)
    model2, arch2, _ = load_model(official)
    assert arch2 == ARCH  # read from the official run-folder name, not the class name
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    bare = tmp_path / "bare.pth"
    save_torch(dict(ckpt["model"]), bare)
    assert load_model(bare, arch=ARCH, num_classes=10).arch == ARCH
    with pytest.raises(ValueError, match="cannot tell the architecture"):
        load_model(bare)


def test_load_model_mismatches(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    path = run_dir / f"{ARCH}_best.pth"
    with pytest.raises(ValueError, match="holds a resnet8, but arch resnet20"):
        load_model(path, arch="resnet20")
    with pytest.raises(ValueError, match="has 10 classes but 100 were requested"):
        load_model(path, num_classes=100)
    sd = load_checkpoint(path)["model"]
    other = tmp_path / "resnet20_digits_lr_0.05_decay_0.0005_trial_0" / "ckpt.pth"
    save_torch({"model": sd}, other)  # resnet8 weights in a folder that says resnet20
    with pytest.raises(ValueError, match="does not fit resnet20 with 10 classes.*(missing|unexpected)"):
        load_model(other)
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        load_model(path, arch="nope")


def test_resume_matches_uninterrupted(tmp_path, capsys):
    common = BASE + ["--model", ARCH, "--lr_decay_epochs", "1"]
    full = train_teacher.main(common + ["--epochs", "2", "--run_dir", str(tmp_path / "full")])
    train_teacher.main(common + ["--epochs", "1", "--run_dir", str(tmp_path / "part")])
    resumed = train_teacher.main(common + ["--epochs", "2", "--run_dir", str(tmp_path / "part"), "--resume", "auto"])
    assert resumed["epochs_run"] == 1 and "resumed from" in capsys.readouterr().out
    a = load_checkpoint(tmp_path / "full" / f"{ARCH}_last.pth")
    b = load_checkpoint(tmp_path / "part" / f"{ARCH}_last.pth")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert full["last_acc"] == resumed["last_acc"] and full["best_acc"] == resumed["best_acc"]


@pytest.mark.parametrize("arch, image_size", [("resnet8", 16), ("resnet20", 16)])
def test_seconds_per_epoch_reported(arch, image_size, tmp_path, capsys):
    argv = BASE + ["--model", arch, "--image_size", str(image_size), "--epochs", "1",
                   "--run_dir", str(tmp_path / arch)]
    summary = train_teacher.main(argv)
    out = capsys.readouterr().out
    assert summary["seconds_per_epoch"] > 0 and "seconds per epoch" in out
    with capsys.disabled():
        print(f"\n[timing] {arch} digits {image_size}x{image_size}, 1 CPU thread: "
              f"{summary['seconds_per_epoch']:.2f} s per epoch (training {summary['train_seconds_per_epoch']:.2f} s)")


# ---------------------------------------------------------------- bad inputs
@pytest.mark.slow
def test_unknown_arch_subprocess(repo_root, tmp_path):
    python = sys.executable
    proc = subprocess.run([python, "train_teacher.py", "--model", "resnet9000", "--dataset", "digits",
                           "--save_dir", str(tmp_path)], cwd=repo_root, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TOPKD_DEBUG": "0"})
    assert_user_error(proc.returncode, proc.stderr, "unknown architecture 'resnet9000'", "resnet20", "wrn_40_2")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("extra, words", [
    (["--epochs", "0"], ["--epochs must be a positive integer"]),
    (["--batch_size", "-1"], ["--batch_size must be a positive integer"]),
    (["--lr", "-0.1"], ["--lr must be a finite number > 0"]),
    (["--lr_decay_epochs", "5,x"], []),  # argparse error (exit 2 with usage) is checked separately
])
def test_bad_values(extra, words, tmp_path, run_stage):
    code, _, err = run_stage(train_teacher.main, BASE + ["--model", ARCH, "--run_dir", str(tmp_path)] + extra)
    if words:
        assert_user_error(code, err, *words)
    else:
        assert code == 2 and "Traceback" not in err


def test_missing_data_folder(tmp_path, run_stage):
    code, _, err = run_stage(train_teacher.main, ["--model", ARCH, "--dataset", "cifar100", "--device", "cpu",
                                                  "--data_root", str(tmp_path / "empty"), "--save_dir", str(tmp_path)])
    assert_user_error(code, err, str(tmp_path / "empty"))


def test_resume_errors(teacher_run, tmp_path, run_stage):
    run_dir, _ = teacher_run
    common = BASE + ["--epochs", "1", "--run_dir", str(tmp_path / "run")]
    code, _, err = run_stage(train_teacher.main, common + ["--model", ARCH, "--resume"])
    assert_user_error(code, err, "--resume: no checkpoint at", f"{ARCH}_last.pth")
    good = run_dir / f"{ARCH}_last.pth"
    # checkpoint of another architecture
    code, _, err = run_stage(train_teacher.main, common + ["--model", "resnet20", "--resume", str(good)])
    assert_user_error(code, err, "holds a resnet8", "trains resnet20")
    # same architecture, other class count (an official-style checkpoint without 'arch')
    ckpt = load_checkpoint(good)
    ckpt.pop("arch")
    ckpt["model"]["fc.weight"] = ckpt["model"]["fc.weight"][:5]
    ckpt["model"]["fc.bias"] = ckpt["model"]["fc.bias"][:5]
    other = tmp_path / "five_classes.pth"
    save_torch(ckpt, other)
    code, _, err = run_stage(train_teacher.main, common + ["--model", ARCH, "--resume", str(other)])
    assert_user_error(code, err, "fc.weight (5, 64) vs (10, 64)")
    # truncated file
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:1000])
    code, _, err = run_stage(train_teacher.main, common + ["--model", ARCH, "--resume", str(cut)])
    assert_user_error(code, err, "truncated or damaged", str(cut))


class NaNAfter(Distiller):
    """Cross-entropy that becomes NaN at global step 30 (epoch 2: 23 steps per epoch)."""

    def __init__(self, student, teacher=None, **_):
        super().__init__(student)
        self.calls = 0

    def forward_train(self, image, target, **batch):
        self.calls += 1
        logits = self.student(image)
        loss = torch.nn.functional.cross_entropy(logits, target)
        return logits, {"loss_ce": loss * float("nan") if self.calls == 30 else loss}


def test_nan_loss_exit(tmp_path, run_stage, monkeypatch):
    monkeypatch.setitem(distiller_dict, "vanilla", NaNAfter)
    run_dir = tmp_path / "run"
    code, out, err = run_stage(train_teacher.main, BASE + ["--model", ARCH, "--epochs", "3", "--run_dir", str(run_dir)])
    last = run_dir / f"{ARCH}_last.pth"
    assert_user_error(code, err, "non-finite loss at epoch 2, step 7", "loss_ce = nan", str(last))
    assert load_checkpoint(last)["epoch"] == 1
    assert "epoch 1/3" in out and "epoch 2/3" not in out


# ---------------------------------------------------------------- distributed
DDP_WRAPPER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    import torch
    torch.set_num_threads(1)
    import engine.trainer as trainer
    original_fit = trainer.Trainer.fit

    def fit(self):
        summary = original_fit(self)
        params = {{n: p.detach().clone() for n, p in self.distiller.student.named_parameters()}}
        torch.save(params, os.path.join({dump!r}, "rank%s.pt" % os.environ["RANK"]))
        return summary

    trainer.Trainer.fit = fit
    import train_teacher
    from topkd_io import run_cli
    run_cli(train_teacher.main, sys.argv[1:])
""")


@pytest.mark.slow
def test_ddp_two_processes(repo_root, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found beside the Python interpreter")
    dump = tmp_path / "dump"
    dump.mkdir()
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(DDP_WRAPPER.format(repo=str(repo_root), dump=str(dump)))
    run_dir = tmp_path / "run"
    argv = BASE + ["--model", ARCH, "--epochs", "2", "--run_dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(wrapper)] + argv,
                          cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x2 processes" in proc.stdout and proc.stdout.count("epoch 2/2") == 1  # rank 0 logs alone
    a, b = safe_load(dump / "rank0.pt"), safe_load(dump / "rank1.pt")
    for key in a:  # parameters agree; BN running statistics are per process between broadcasts
        assert torch.equal(a[key], b[key]), key
    assert sorted(os.listdir(run_dir)) == sorted([f"{ARCH}_best.pth", f"{ARCH}_last.pth", "config.yaml", "summary.yaml",
                                                  "tb"])  # rank 0 alone writes, summary.yaml included
    assert len(os.listdir(run_dir / "tb")) == 1  # one event file: rank 0's
    saved = load_checkpoint(run_dir / f"{ARCH}_last.pth")["model"]
    for key in a:
        assert torch.equal(a[key], saved[key]), key

    # Resume under DDP: 1 epoch, then --resume to 2, must equal the straight 2-epoch run bit for bit.
    # Each process draws its own augmentations, so each must get its own RNG state back.
    resumed_dir = tmp_path / "resumed"
    for epochs, extra in (("1", []), ("2", ["--resume"])):
        argv = BASE + ["--model", ARCH, "--epochs", epochs, "--run_dir", str(resumed_dir)] + extra
        proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(wrapper)] + argv,
                              cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(resumed_dir / f"{ARCH}_last.pth")
    assert len(ckpt["rng_ranks"]) == 2 and not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])
    for key in a:
        assert torch.equal(a[key], ckpt["model"][key]), f"resumed DDP run differs from the straight one at {key}"
