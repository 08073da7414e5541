"""A run's identity holds what decides its result beyond the flags: the data it read (CIFAR files, ImageFolder
trees, image-PI caches), the number of processes; DDP logs the saved checkpoint's metrics; a TGD student checks
its PI cache against the PI teacher's, and a student refuses a PI teacher as its image teacher."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import evaluate
import generate_image_PI
import train_student
import train_teacher
from helpers import one_line
from topkd_io import save_torch

CPU = ["--num_workers", "0", "--device", "cpu", "--print_freq", "1000", "--threads", "1"]
DIGITS = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", *CPU]
STUDENT = DIGITS + ["--topo_eval_batches", "0", "--model_s", "resnet8", "--epochs", "1"]


def teacher_argv(save_dir, *extra):
    return ["--model", "resnet8", "--epochs", "1", "--save_dir", str(save_dir), *CPU, *extra]


def plan(main, argv):
    return main(argv + ["--plan"])


# ---------------------------------------------------------------------------------------------- data
def test_replaced_cifar_files_are_not_the_finished_run(tmp_path, monkeypatch):
    """After the CIFAR-100 pickles were replaced by other data, --plan still answered `finished`."""
    import torchvision.datasets.cifar as tv_cifar
    from test_datasets import _write_cifar100

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    data = tmp_path / "data"
    _write_cifar100(data, n_train=20, n_test=10, seed=0)
    argv = teacher_argv(tmp_path / "t", "--dataset", "cifar100", "--data_root", str(data), "--batch_size", "20")
    run_dir = os.path.dirname(train_teacher.main(argv)["last_checkpoint"])
    assert plan(train_teacher.main, argv)["plan"] == "finished"
    shutil.rmtree(data / "cifar-100-python")
    _write_cifar100(data, n_train=20, n_test=10, seed=1)  # the same format and sizes, other images
    assert plan(train_teacher.main, argv)["plan"] == "new"
    there = plan(train_teacher.main, argv + ["--run_dir", run_dir])
    assert there["plan"] == "conflict" and "input data_root" in there["detail"], there
    # absent data: the plan is pending, a run says what is missing
    shutil.rmtree(data / "cifar-100-python")
    assert plan(train_teacher.main, argv)["plan"] == "pending"
    with pytest.raises(FileNotFoundError, match="--download"):
        train_teacher.main(argv)


def _tree(root, classes, per_class, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for k in range(per_class):
                pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{k}.png")


def test_teacher_of_another_imagefolder_root_is_not_finished(tmp_path, monkeypatch):
    """A teacher trained on --data_root data/imagenet_b (other classes and images) counted as finished for
    data/imagenet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b = tmp_path / "imagenet_a", tmp_path / "imagenet_b"
    _tree(a, ("cat", "dog"), 3, seed=0)
    _tree(b, ("ant", "bee"), 3, seed=1)
    argv = teacher_argv(tmp_path / "t", "--dataset", "imagenet", "--image_size", "8", "--batch_size", "6",
                        "--data_root", str(a))
    run_dir = os.path.dirname(train_teacher.main(argv)["last_checkpoint"])
    assert plan(train_teacher.main, argv)["plan"] == "finished"
    other = argv[:-1] + [str(b)]
    assert plan(train_teacher.main, other)["plan"] == "new"
    assert plan(train_teacher.main, other + ["--run_dir", run_dir])["plan"] == "conflict"
    # the listing is cached by the folders' mtimes: a file added changes the fingerprint, a corrupt cache is
    # recomputed
    from datasets import data_fingerprint

    cache = tmp_path / "cache" / "topkd" / "data_fingerprints.json"
    first = data_fingerprint("imagenet", str(a))
    assert cache.is_file() and len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")
    assert data_fingerprint("imagenet", str(a)) == first
    shutil.copyfile(a / "train" / "cat" / "0.png", a / "train" / "cat" / "9.png")
    assert data_fingerprint("imagenet", str(a)) != first
    # a cache that cannot be written: recomputed every time, the same answer
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))  # a file where the folder should be
    assert data_fingerprint("imagenet", str(b)) == data_fingerprint("imagenet", str(b))


def test_data_choosing_options_and_world_size_are_in_the_identity(tmp_path, monkeypatch):
    """A 1-process and a 2-process run of the same flags were "the same settings"."""
    argv = teacher_argv(tmp_path, *DIGITS)
    identity = train_teacher.parse(argv)[1]
    assert identity.options["world_size"] == 1 and identity.inputs["data_root"]
    for extra in (["--train_fraction", "0.5"], ["--val_fraction", "0.2"], ["--augment", "none"]):
        assert train_teacher.parse(argv + extra)[1].hash != identity.hash, extra
    run_dir = os.path.dirname(train_teacher.main(argv)["last_checkpoint"])
    assert plan(train_teacher.main, argv)["plan"] == "finished"
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun --nproc_per_node 2 would run
    assert plan(train_teacher.main, argv)["plan"] == "new"
    there = plan(train_teacher.main, argv + ["--run_dir", run_dir])
    assert there["plan"] == "conflict" and "world_size 1 -> 2" in there["detail"], there


def test_sync_bn_is_refused_on_the_cpu_and_recorded_false_in_one_process(tmp_path, monkeypatch, run_stage, caplog):
    argv = teacher_argv(tmp_path, *DIGITS, "--sync_bn")
    cfg, identity, _ = train_teacher.parse(argv)
    assert cfg.sync_bn is False and identity.options["sync_bn"] is False
    assert "--sync_bn" in caplog.text and "one process" in caplog.text
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run_stage(train_teacher.main, argv + ["--plan"])
    one_line(code, err, "--sync_bn", "CUDA")


# ---------------------------------------------------------------------------------------------- DDP
@pytest.mark.slow
def test_ddp_logged_test_metrics_are_the_saved_checkpoints(repo_root, tmp_path):
    """A 2-process torchrun student logged a test loss of 137,553,836 where evaluate.py on its _last.pth gave
    153,531,504: each process evaluated its shard with its own BatchNorm statistics."""
    from models import model_dict
    from tools.figures import read_scalars

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found beside the Python interpreter")
    torch.manual_seed(0)
    teacher = tmp_path / "teacher" / "resnet8_best.pth"
    save_torch({"model": model_dict["resnet8"](num_classes=10).state_dict(), "arch": "resnet8", "num_classes": 10},
               teacher)
    run_dir = tmp_path / "run"
    argv = STUDENT + ["--path_t", str(teacher), "--distill", "kd", "--lr", "0.2", "--run_dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "train_student.py", *argv],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["identity"]["options"]["world_size"] == 2
    logged = read_scalars(run_dir)
    result = evaluate.main([str(run_dir / "resnet8_last.pth"), "--no_save", "--device", "cpu",
                            "--data_root", "unused"])
    assert logged["test/loss"][1][-1] == pytest.approx(result["loss"], rel=1e-5)
    for key in ("top1", "top5"):
        assert logged[f"test/{key}"][1][-1] == pytest.approx(result[key], abs=1e-4), key


# ---------------------------------------------------------------------------------------------- image PIs
@pytest.fixture(scope="module")
def pi_teacher(tmp_path_factory):
    """Digits image-PI caches at resolution 8 and a PI teacher trained one epoch on them (--pi_cache)."""
    root = tmp_path_factory.mktemp("pi")
    cache = root / "image_pi"
    generate_image_PI.main(["--dataset", "digits", "--out", str(cache), "--resolution", "8", "--threads", "1"])
    argv = teacher_argv(root / "t", "--dataset", "digits", "--input", "pi", "--pi_cache", str(cache / "digits_train"),
                        "--batch_size", "256")
    summary = train_teacher.main(argv)
    return cache, argv, summary["best_checkpoint"]


def test_a_pi_cache_regenerated_in_place_is_not_the_finished_run(pi_teacher, tmp_path):
    """--pi_cache regenerated in place with other PI parameters: --plan said `finished`, --skip_finished skipped."""
    cache, argv, _ = pi_teacher
    assert plan(train_teacher.main, argv)["plan"] == "finished"
    copy = tmp_path / "image_pi"
    shutil.copytree(cache, copy)
    moved = [a if a != str(cache / "digits_train") else str(copy / "digits_train") for a in argv]
    assert plan(train_teacher.main, moved)["plan"] == "finished"  # the content counts, not the path
    generate_image_PI.main(["--dataset", "digits", "--out", str(copy), "--resolution", "9", "--threads", "1",
                            "--overwrite"])
    assert plan(train_teacher.main, moved)["plan"] == "new"
    summary = train_teacher.main(moved + ["--skip_finished"])
    assert not summary.get("skipped") and summary["epochs_run"] == 1


def test_tgd_student_checks_its_pi_cache_against_the_pi_teacher(pi_teacher, tmp_path, run_stage, capsys):
    """A TGD student given a PI cache of another resolution than its PI teacher was trained on trained to the end."""
    from models import model_dict

    cache, _, pi_path = pi_teacher
    other = tmp_path / "image_pi"
    generate_image_PI.main(["--dataset", "digits", "--out", str(other), "--resolution", "6", "--threads", "1"])
    image = tmp_path / "image" / "resnet8_best.pth"
    save_torch({"model": model_dict["resnet8"](num_classes=10).state_dict(), "arch": "resnet8", "num_classes": 10},
               image)
    capsys.readouterr()  # the cache's progress lines
    argv = STUDENT + ["--distill", "tgd", "--path_t", str(image), "--path_t2", pi_path, "--max_steps", "1",
                      "--save_dir", str(tmp_path / "s")]
    code, _, err = run_stage(train_student.main, argv + ["--pi_cache", str(other / "digits_train")])
    line = one_line(code, err, pi_path, str(other / "digits_train"), "resolution")
    assert "8" in line and "6" in line
    code, _, err = run_stage(train_student.main, argv + ["--pi_cache", str(cache / "digits_train")])
    assert code == 0, err


def test_a_pi_teacher_as_the_image_teacher_is_one_line(tmp_path, run_stage):
    """A PI teacher given as --path_t to a student ended in a 53-line channel-mismatch traceback."""
    from models import model_dict

    path = tmp_path / "pi" / "resnet8_best.pth"
    model = model_dict["resnet8"](num_classes=10, in_channels=6)
    save_torch({"model": model.state_dict(), "arch": "resnet8", "num_classes": 10, "in_channels": 6}, path)
    run_dir = tmp_path / "run"
    argv = STUDENT + ["--path_t", str(path), "--run_dir", str(run_dir)]
    code, _, err = run_stage(train_student.main, argv)
    one_line(code, err, str(path), "6", "3", "--input pi")
    assert not run_dir.exists()
