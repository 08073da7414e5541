"""evaluate.py rebuilds a run's inputs as the run recorded them and writes only where it should.

Each test first reproduces what used to go wrong (named in its docstring). Runs are tiny: digits at 8x8 or a
4-image-per-class ImageFolder tree, resnet8, one epoch or two optimisation steps.
"""
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import evaluate
import train_teacher
from helpers import one_line
from test_datasets import _write_cifar10, _write_tree, skip_md5  # noqa: F401  (skip_md5: a fixture)
from topkd_io import load_checkpoint

DIGITS = ["--dataset", "digits", "--image_size", "8", "--num_workers", "0", "--device", "cpu", "--print_freq",
          "1000", "--threads", "1"]


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    """A resnet8 digits teacher (8x8 images, one epoch) in its run folder -> its last checkpoint."""
    save = tmp_path_factory.mktemp("teachers")
    summary = train_teacher.main(DIGITS + ["--model", "resnet8", "--epochs", "1", "--batch_size", "64",
                                           "--save_dir", str(save)])
    return summary["last_checkpoint"]


def evaluated(run_stage, argv):
    """evaluate.py through its command line -> (exit code, its stdout line, stderr). The training output
    before it is read and dropped first."""
    run_stage(lambda: None, None)
    code, out, err = run_stage(evaluate.main, argv + ["--device", "cpu"])
    return code, out.strip(), err


def assert_equals_recorded(checkpoint, line):
    """The top-1 and top-5 evaluate.py wrote beside the checkpoint (in its run folder) are the last epoch's that
    the checkpoint records."""
    ckpt = load_checkpoint(checkpoint)
    result = yaml.safe_load(Path(line.rsplit(" -> ", 1)[1]).read_text())
    assert (result["top1"], result["top5"]) == pytest.approx((ckpt["last_acc"], ckpt["last_top5"]), abs=1e-9), line


@pytest.fixture(scope="module")
def pi_root(tmp_path_factory):
    """Digits image-PI caches (8x8 images, the default parameters) -> their root."""
    from datasets import build_datasets
    from datasets.pi_images import build_pi_cache, cache_folder, to_unit_tensor
    from datasets.bundle import with_transform

    root = tmp_path_factory.mktemp("image_pi")
    small = build_datasets("digits", "unused", image_size=8, train_augment=False)
    for split, part in (("train", small.train), ("test", small.test)):
        build_pi_cache(with_transform(part, to_unit_tensor), cache_folder(root, "digits", split), "digits", split,
                       chunk_size=2048)
    return root


@pytest.mark.parametrize("flag", ["--pi_root", "--pi_cache"])
def test_a_pi_teacher_is_evaluated_on_its_run_inputs(pi_root, flag, tmp_path, run_stage):
    """Was: the PIs were rebuilt without the run's input_norm (TGD's constants under the PI recipe): 10.28 %
    for a checkpoint recording 21.11 %; and a run's --pi_cache was not looked at."""
    run = tmp_path / "pi_teacher"
    train_teacher.main(DIGITS + ["--model", "resnet8", "--input", "pi", flag, str(pi_root), "--epochs", "1",
                                 "--max_steps", "3", "--lr", "0.02", "--run_dir", str(run)])
    checkpoint = run / "resnet8_last.pth"
    assert load_checkpoint(checkpoint)["config"]["input_norm"] == "tgd"  # the PI recipe's
    code, line, err = evaluated(run_stage, [str(checkpoint)])
    assert code == 0, err
    assert_equals_recorded(checkpoint, line)


def test_an_imagenet_run_is_evaluated_on_its_own_root_and_size(tmp_path, run_stage, monkeypatch):
    """Was: --data_root defaulted to ./data, not the run's own root."""
    root = tmp_path / "elsewhere" / "imagenet"
    _write_tree(root, splits=("train", "val"), per_class=4, size=(20, 24))
    run = tmp_path / "teacher"
    train_teacher.main(["--dataset", "imagenet", "--data_root", str(root), "--image_size", "16", "--model", "resnet8",
                        "--epochs", "1", "--batch_size", "4", "--num_workers", "0", "--device", "cpu", "--threads",
                        "1", "--run_dir", str(run)])
    monkeypatch.chdir(tmp_path)  # no ./data here
    checkpoint = run / "resnet8_last.pth"
    code, line, err = evaluated(run_stage, [str(checkpoint)])
    assert code == 0, err
    assert "(8 images)" in line
    assert_equals_recorded(checkpoint, line)


def test_recorded_options_go_only_to_the_builders_that_take_them(digits_teacher, tmp_path, run_stage, skip_md5):  # noqa: F811
    """Was: `evaluate.py <digits teacher> --dataset cifar10` said `unknown option(s) image_size for data set
    'cifar10'` though no image size was given: the digits run's recorded one was passed on."""
    _write_cifar10(tmp_path)
    code, line, err = evaluated(run_stage, [digits_teacher, "--dataset", "cifar10", "--data_root", str(tmp_path),
                                            "--no_save"])
    assert code == 0, err
    assert "on cifar10 test (10 images)" in line
    from engine.config import recorded_data_options

    record = load_checkpoint(digits_teacher)["config"]
    assert recorded_data_options(record, "cifar10") == {"train_augment": True}
    assert recorded_data_options(record, "digits")["image_size"] == 8
    # an option the user gives goes on, so the data set refuses it in one line
    code, _, err = evaluated(run_stage, [digits_teacher, "--dataset", "cifar10", "--data_root", str(tmp_path),
                                         "--image_size", "16", "--no_save"])
    one_line(code, err, "unknown option(s) image_size for data set 'cifar10'")


def test_results_are_written_beside_a_checkpoint_only_in_our_run_folders(digits_teacher, tmp_path, run_stage):
    """Was: the YAML was written beside any checkpoint by default, into a downloaded release folder too."""
    code, line, err = evaluated(run_stage, [digits_teacher])
    assert code == 0, err
    ours = sorted(p.name for p in Path(digits_teacher).parent.glob("eval_*"))
    assert len(ours) == 1 and line.endswith(ours[0])
    release = tmp_path / "release"
    release.mkdir()
    copy = release / "resnet8_best.pth"
    shutil.copy(digits_teacher, copy)
    (release / "config.yaml").write_text("lr: 0.05\n")  # a config without a recorded identity: not ours either
    code, line, err = evaluated(run_stage, [str(copy)])
    assert code == 0, err
    assert len(line.splitlines()) == 1 and "not written" in line and "--out" in line
    assert sorted(p.name for p in release.iterdir()) == ["config.yaml", "resnet8_best.pth"]
    # --out a folder: the default name there; --out a file: that file
    code, line, err = evaluated(run_stage, [str(copy), "--out", str(release)])
    assert code == 0, err
    (written,) = release.glob("eval_resnet8_best-*_digits_test.yaml")
    assert line.endswith(str(written))
    code, line, err = evaluated(run_stage, [str(copy), "--out", str(tmp_path / "r.yaml")])
    assert code == 0 and (tmp_path / "r.yaml").is_file(), err


def test_official_style_checkpoint_without_record_still_evaluates(digits_teacher, tmp_path, run_stage):
    """A checkpoint recording nothing (official files) takes the options given and the defaults."""
    bare = tmp_path / "resnet8_best.pth"
    torch.save({"model": load_checkpoint(digits_teacher)["model"]}, bare)
    code, line, err = evaluated(run_stage, [str(bare), "--dataset", "digits", "--image_size", "8", "--no_save"])
    assert code == 0, err
    assert "on digits test (360 images)" in line
