"""Experiments one can publish from: distinct trials, one folder per configuration, provenance,
an honest results table, evaluate.py, and the official README's steps chaining with no path typed.

Each test first reproduces the input that used to go wrong (named in its docstring). Runs are tiny: digits
at 8x8 or a fake CIFAR-100 with 100 training images, resnet8, one epoch.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import train_student
import train_teacher
from helpers import one_line, weights_digest
from topkd_io import file_sha256, load_checkpoint

DIGITS = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", "--num_workers", "0", "--device", "cpu",
          "--print_freq", "1000", "--threads", "1", "--lr_decay_epochs", "100"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A resnet8 teacher, one epoch on 8x8 digits -> its best checkpoint."""
    save = tmp_path_factory.mktemp("teachers")
    summary = train_teacher.main(DIGITS + ["--model", "resnet8", "--epochs", "1", "--save_dir", str(save)])
    return summary["best_checkpoint"]


def student(teacher, save_dir, *extra):
    return DIGITS + ["--path_t", teacher, "--model_s", "resnet8", "--epochs", "1", "--save_dir", str(save_dir),
                     "--distill", "kd", "-a", "1", *extra]


# ----------------------------------------------------------------------------------------- one folder per run
def test_runs_differing_in_kd_T_get_their_own_folders(teacher, tmp_path, run_stage):
    """Two runs with --kd_T 2 and --kd_T 6 used to share one folder (config.yaml kept the second, tb/ two event
    files), and rerunning a finished run replaced its checkpoints."""
    a = train_student.main(student(teacher, tmp_path, "--kd_T", "2"))
    b = train_student.main(student(teacher, tmp_path, "--kd_T", "6"))
    dir_a, dir_b = (Path(s["last_checkpoint"]).parent for s in (a, b))
    assert dir_a != dir_b and dir_a.parent == dir_b.parent == tmp_path
    assert re.fullmatch(r"S-resnet8_T-resnet8_digits_kd_r-1.0_a-1.0_d-0.0_trial_0-[0-9a-f]{8}", dir_a.name)
    for folder, kd_t in ((dir_a, 2.0), (dir_b, 6.0)):
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        assert cfg["kd_T"] == kd_t and cfg["identity"]["options"]["kd_T"] == kd_t
        assert cfg["identity"]["hash"] == folder.name[-8:]
        assert cfg["identity"]["inputs"]["path_t"] == file_sha256(teacher)
        assert len(os.listdir(folder / "tb")) == 1
    # a third run into the folder of another identity: one line naming the first difference
    before = weights_digest(dir_a / "resnet8_last.pth")
    code, _, err = run_stage(train_student.main, student(teacher, tmp_path, "--kd_T", "6", "--run_dir", str(dir_a)))
    one_line(code, err, str(dir_a), "kd_T 2.0 -> 6.0", "--overwrite")
    # the same settings again: refused (a finished run is never silently replaced), or skipped on request
    code, _, err = run_stage(train_student.main, student(teacher, tmp_path, "--kd_T", "2"))
    one_line(code, err, "holds a finished run of these settings", "--skip_finished")
    code, out, _ = run_stage(train_student.main, student(teacher, tmp_path, "--kd_T", "2", "--skip_finished"))
    assert code == 0 and f"skip: {dir_a}" in out
    code, out, _ = run_stage(train_student.main, student(teacher, tmp_path, "--kd_T", "2", "--plan"))
    assert out.splitlines()[-1].split("\t")[:2] == ["finished", str(dir_a)]
    assert weights_digest(dir_a / "resnet8_last.pth") == before
    # --resume continues the same identity (more epochs: same folder, the hash leaves --epochs out)
    resumed = train_student.main(student(teacher, tmp_path, "--kd_T", "2", "--resume", "--epochs", "2"))
    assert resumed["epochs_run"] == 1 and Path(resumed["last_checkpoint"]).parent == dir_a
    assert load_checkpoint(dir_a / "resnet8_last.pth")["epoch"] == 2
    # --overwrite starts afresh and says what it deletes
    code, out, err = run_stage(train_student.main, student(teacher, tmp_path, "--kd_T", "6", "--overwrite"))
    assert code == 0, err
    assert f"--overwrite: {dir_b}: removed config.yaml, resnet8_best.pth, resnet8_last.pth, summary.yaml, tb" in out


def test_unused_weight_is_warned_and_left_out(teacher, tmp_path, run_stage):
    """`-b 0.8` with --distill kd was written into the folder name though no term uses it (the official TopKD
    line passes it, so it must keep running)."""
    code, out, err = run_stage(train_student.main, student(teacher, tmp_path, "-b", "0.8"))
    assert code == 0, err
    assert "note: -b/--beta 0.8 is not used by --distill kd" in out and "left out of the run name and identity" in out
    (folder,) = tmp_path.iterdir()
    assert "_b-" not in folder.name
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    # (with -d 0 the topology options are unused too)
    assert cfg["beta"] == 0.8 and "beta" in cfg["unused_options"] and "beta" not in cfg["identity"]["options"]
    # without -b: the same identity, so the same (finished) folder
    code, out, _ = run_stage(train_student.main, student(teacher, tmp_path, "--plan"))
    assert out.splitlines()[-1].startswith(f"finished\t{folder}")


def test_provenance_in_config_and_checkpoints(teacher, tmp_path, run_stage):
    """config.yaml recorded no commit, versions, date or device, and neither the teacher's file nor its
    accuracy was printed or stored."""
    from engine.record import git_state

    code, out, err = run_stage(train_student.main, student(teacher, tmp_path))
    assert code == 0, err
    (folder,) = tmp_path.iterdir()
    prov = yaml.safe_load((folder / "config.yaml").read_text())["provenance"]
    assert set(prov["versions"]) >= {"torch", "torchvision", "gudhi", "numpy", "python"}
    assert prov["device"] == "cpu" and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", prov["date"]) and prov["command"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"] or "0" * 40) and prov["dirty"] in (True, False, None)
    assert prov["inputs"]["path_t"] == {"path": os.path.abspath(teacher), "sha256": file_sha256(teacher)}
    recorded = float(load_checkpoint(teacher)["best_acc"])
    assert prov["teacher_top1"] == pytest.approx(recorded, abs=1e-4)
    assert f"test top-1 {recorded:.2f} in its checkpoint" in out and file_sha256(teacher)[:8] in out
    assert load_checkpoint(folder / "resnet8_best.pth")["config"]["provenance"]["inputs"] == prov["inputs"]
    assert git_state(tmp_path) == {"commit": None, "dirty": None}  # outside a git checkout: unknown, no error


def test_val_fraction_holds_out_the_same_images_for_every_method_and_seed(teacher, tmp_path, monkeypatch):
    """--val_split drew the held-out images with the run's seed: two seeds of one comparison selected their
    checkpoints on different images. --val_fraction holds out the same ones for every method, seed and stage."""
    import datasets

    class Built(Exception):
        pass

    splits, build = [], datasets.build_datasets

    def stop_after_data(*args, **kwargs):
        data = build(*args, **kwargs)
        splits.append((data.train.indices, data.val.indices))
        raise Built

    monkeypatch.setattr(datasets, "build_datasets", stop_after_data)
    for extra in (["--seed", "0"], ["--seed", "1"], ["--distill", "dkd", "--seed", "1"], ["-a", "0", "--seed", "2"]):
        with pytest.raises(Built):
            train_student.main(student(teacher, tmp_path, "--val_fraction", "0.2", *extra))
    with pytest.raises(Built):
        train_teacher.main(DIGITS + ["--model", "resnet8", "--save_dir", str(tmp_path), "--val_fraction", "0.2",
                                     "--seed", "5"])
    (train, val), *others = splits
    assert len(others) == 4 and all(other == (train, val) for other in others)
    assert len(val) == round(0.2 * 1437) and not set(train) & set(val) and len(train) + len(val) == 1437


# ----------------------------------------------------------------------------------------- evaluate.py
def test_evaluate_reproduces_the_stored_best_accuracy(teacher, tmp_path, run_stage):
    """There was no way to get a saved network's test top-1 without training (--epochs 0 is refused)."""
    import evaluate

    code, out, err = run_stage(evaluate.main, [teacher, "--device", "cpu"])
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1
    stored = float(load_checkpoint(teacher)["best_acc"])
    result_file = Path(teacher).parent / f"eval_resnet8_best-{file_sha256(teacher)[:8]}_digits_test.yaml"
    result = yaml.safe_load(result_file.read_text())
    assert result["top1"] == pytest.approx(stored, abs=1e-9) and result["n"] == 360
    assert len(result["per_class"]) == 10 and all(0 <= v <= 100 for v in result["per_class"])
    assert result["top1"] == pytest.approx(np.mean(result["per_class"]), abs=3.0)  # 36 images per class
    assert f"top-1 {stored:.2f}" in out
    # a copy of it without any recorded accuracy (as torchvision or TGD files): the collector takes the
    # evaluate.py result beside it
    from tools import collect_results as cr

    bare = tmp_path / "runs" / "resnet8_digits_lr_0.05_decay_0.0005_trial_0" / "resnet8_best.pth"
    bare.parent.mkdir(parents=True)
    torch.save({"model": load_checkpoint(teacher)["model"]}, bare)
    (row,) = cr.collect([tmp_path / "runs"], tmp_path / "table")[2]
    assert row.best.mean is None and "evaluate.py" in row.best.note
    # outside our run folders evaluate.py writes only where --out says (here: the folder, under the default name)
    assert run_stage(evaluate.main, [str(bare), "--dataset", "digits", "--image_size", "8", "--device", "cpu",
                                     "--out", str(bare.parent)])[0] == 0
    (row,) = cr.collect([tmp_path / "runs"], tmp_path / "table")[2]
    assert row.best.mean == pytest.approx(stored, abs=1e-9)


def test_evaluate_reads_the_released_topkd_student(reference_dir):
    """The official release's resnet20 student, read as released, gives the official logits."""
    from models import load_model

    released = next((reference_dir / "official_released" / "topkd").rglob("resnet20_best.pth"), None)
    if released is None:
        pytest.skip("official released student not found")
    model, arch, _ = load_model(str(released), arch="resnet20")
    ref = np.load(reference_dir / "official_outputs.npz")
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(ref["x"]).float())
    assert arch == "resnet20"
    np.testing.assert_allclose(logits.numpy(), ref["resnet20_logits"], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------- collector
def _fake(folder, arch, cfg, best, last, model=None):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    state = {"arch": arch, "epoch": 1, "best_acc": best, "last_acc": last}
    if model is not None:
        state["model"] = model
    torch.save(state, folder / f"{arch}_best.pth")
    torch.save(state, folder / f"{arch}_last.pth")
    return folder / f"{arch}_best.pth"


def test_collector_keeps_teachers_of_one_architecture_apart(tmp_path):
    """Students of a 2.00 and a 79.50 resnet32x4 teacher got `teacher top-1 40.75 ± 54.80`: the teachers were
    averaged by architecture name. Identical trials printed `± 0.00`."""
    from tools import collect_results as cr

    teachers = {}
    for i, acc in enumerate((2.0, 79.5)):
        path = _fake(tmp_path / "t" / f"resnet32x4_cifar100_trial_{i}", "resnet32x4",
                     {"model": "resnet32x4", "dataset": "cifar100", "lr": 0.05, "epochs": 240, "trial": i}, acc, acc,
                     model={"w": torch.full((2,), float(i))})
        teachers[acc] = path
    for i, acc in enumerate((2.0, 79.5)):
        for trial in range(2):
            cfg = {"model_s": "resnet8x4", "model_t": "resnet32x4", "dataset": "cifar100", "distill": "kd",
                   "gamma": 0.1, "alpha": 0.9, "kd_T": 4.0, "lr": 0.05, "epochs": 240, "trial": trial,
                   "path_t": "/elsewhere/resnet32x4_best.pth",  # moved since: the hash still finds it
                   "provenance": {"inputs": {"path_t": {"path": "/x", "sha256": file_sha256(teachers[acc])}}}}
            same = {"w": torch.ones(3)} if i == 0 else {"w": torch.full((3,), float(trial))}
            _fake(tmp_path / "s" / f"kd_{i}_{trial}", "resnet8x4", cfg, 70.0 + trial * i, 70.0 + trial * i, model=same)
    md, csv_path, rows = cr.collect([tmp_path / "t", tmp_path / "s"], tmp_path / "table")
    students = [r for r in rows if r.method == "kd"]
    assert len(students) == 2
    assert sorted(r.teacher_acc.mean for r in students) == [2.0, 79.5]
    assert all(r.teacher_acc.std is None and r.trials == 2 for r in students)
    low = next(r for r in students if r.teacher_acc.mean == 2.0)
    assert low.best.identical and low.best.text() == "70.00 (identical weights in all 2 trials)"
    high = next(r for r in students if r.teacher_acc.mean == 79.5)
    assert not high.best.identical and high.best.text() == "70.50 ± 0.71"
    text = md.read_text()
    assert f"resnet32x4 ({file_sha256(teachers[2.0])[:8]})" in text and "± 0.00" not in text
    assert "73.33 last (RepDistiller)" in text and "-3.33 (last, RepDistiller)" in text
    assert md.with_suffix(".json").is_file() and "identical_weights" in csv_path.read_text()
    # the networks trained alone are "ce" rows without a teacher
    assert {(r.teacher, r.student) for r in rows if r.method == "ce"} == {("", "resnet32x4")}


# ----------------------------------------------------------------------------------------- the official README
@pytest.fixture()
def fake_cifar(tmp_path, monkeypatch):
    """A working folder with ./data/cifar-100-python (100 training images) and a sitecustomize that lets
    torchvision accept it in subprocesses (it checks the official archive's md5)."""
    from official_tree import fake_md5
    from test_datasets import _write_cifar100

    _write_cifar100(tmp_path / "data", n_train=100, n_test=8)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nimport torchvision.datasets.cifar as _c\n"
        "_c.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)\n")
    fake_md5(monkeypatch)
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1", PY=sys.executable)
    return tmp_path, env


@pytest.mark.slow
def test_official_readme_steps_chain_and_trials_differ(fake_cifar, repo_root, run_stage):
    """The official README's four steps did not chain (`python generate_PCD_PI.py` and `python train_ripsnet.py`
    with no arguments failed, `sh scripts/train_teacher.sh` failed on `set -o pipefail`), and
    `TRIALS=2 bash scripts/train_student.sh` gave two identical runs."""
    import generate_PCD_PI
    import train_ripsnet

    work, env = fake_cifar
    fast = ["--num_workers", "0", "--threads", "1", "--deterministic"]
    done = subprocess.run(["sh", str(repo_root / "scripts" / "train_teacher.sh"), *fast], cwd=work,
                          env=dict(env, MODEL_T="resnet8", EPOCHS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # the official steps 2 and 3 take no path: only speed options (fewer passes and epochs) are given
    code, out, err = run_stage(generate_PCD_PI.main, ["--passes", "4", "--num_workers", "0", "--no_progress"])
    assert code == 0, err
    assert "teacher: --path_t not given; took save_t_models/resnet8_cifar100_epoch_1_bs_64_lr_0.05" in out
    code, out, err = run_stage(train_ripsnet.main, ["--epochs", "2", "--no_progress"])
    assert code == 0, err
    assert "stage 2: --data_dir not given; took ripsnet/data/cifar100_resnet8_batch64_layer-1-" in out
    # the environment wins over SETTING's defaults (`DELTA=10 ALPHA=1` used to run with 2.0*KD + 5.0*tda)
    done = subprocess.run(["sh", str(repo_root / "scripts" / "train_student.sh"), *fast], cwd=work,
                          env=dict(env, MODEL_T="resnet8", MODEL_S="resnet8", EPOCHS="1", TRIALS="2", ALPHA="1",
                                   DELTA="10"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "loss = 1.0*CE + 1.0*KD(T=4.0) + 10.0*tda" in done.stdout
    runs = sorted((work / "save_s_models").iterdir())
    assert [re.sub(r"-[0-9a-f]{8}$", "", r.name) for r in runs] == [
        f"S-resnet8_T-resnet8_cifar100_kd+topkd_r-1.0_a-1.0_d-10.0_trial_{t}" for t in (0, 1)]
    cfgs = [yaml.safe_load((r / "config.yaml").read_text()) for r in runs]
    assert [(c["seed"], c["seed_from"]) for c in cfgs] == [(0, "--trial"), (1, "--trial")]
    rips = cfgs[0]["provenance"]["inputs"]["rips_path"]["path"]  # found by the naming rule, recorded resolved
    assert cfgs[0]["rips_path"] is None and re.search(r"ripsnet/cifar100_resnet8_batch64_-1_dim0_mean-[0-9a-f]{8}/mean_best",
                                                      rips)
    assert weights_digest(runs[0] / "resnet8_last.pth") != weights_digest(runs[1] / "resnet8_last.pth")
    # each trial is reproducible: trial 1 again, in another folder, gives the same weights bit for bit
    again = train_student.main(["--model_t", "resnet8", "--model_s", "resnet8", "--dataset", "cifar100", "--distill",
                                "kd", "--kd_T", "4", "-r", "1", "-a", "1", "-d", "10", "--tda_layer_t", "-1",
                                "--tda_layer_s", "-1", "--dim", "0", "--operator", "mean", "--lr", "0.05", "--epochs",
                                "1", "--teacher_trial", "0", "--trial", "1", "--run_dir", str(work / "again"), *fast])
    assert weights_digest(again["last_checkpoint"]) == weights_digest(runs[1] / "resnet8_last.pth")


def test_official_teacher_and_student_lines_chain(reference_dir, fake_cifar, run_stage, monkeypatch):
    """The official teacher line saved to `<arch>_<dataset>_lr_..._trial_<n>`, so the official student line,
    which names `save_t_models/resnet56_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_5/...`, failed."""
    from official_tree import RIPSNETS, official_lines

    work, _ = fake_cifar
    for rel in RIPSNETS:
        (work / "ripsnet" / "result" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reference_dir / "official_released" / "topkd" / "ripsnet" / "result" / rel,
                        work / "ripsnet" / "result" / rel)
    teacher_line = official_lines(reference_dir, "train_teacher.py")[0] + ["--max_steps", "1"]
    teacher_line[teacher_line.index("--trial") + 1] = "5"  # the loop value the student line names
    code, _, err = run_stage(train_teacher.main, teacher_line)
    assert code == 0, err
    code, out, err = run_stage(train_student.main, official_lines(reference_dir, "train_student.py")[0] +
                               ["--max_steps", "1"])
    assert code == 0, err
    assert re.search(r"teacher: --path_t save_t_models/resnet56_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_5/"
                     r"resnet56_best.pth not found; took save_t_models/resnet56_cifar100_epoch_240_bs_64_lr_0.05_"
                     r"decay_0.0005_trial_5-[0-9a-f]{8}/resnet56_best.pth", out)
    assert "ripsnet/result/cifar100_resnet56_batch64_FCinput_PCD_dim0/mean_best.pth" in out

