"""Official run folders in the results table (the released TopKD run, RepDistiller's layouts), and the
reproduction scripts' per-pair baseline weights (DKD's betas from mdistiller's configs)."""
import argparse
import csv
import io
import shutil

import numpy as np
import pytest
import torch

from test_collect_results import dry_run, parse_command, shared_dry_run
from tools import collect_results as cr

TOPKD_RUN = ("T:resnet56_S:resnet20_cifar100_64_KD:KD_T:4.0_epochs_240_lr_0.05_decay_0.0005_r:1.0_a:2.0_b:0.8_"
             "d:5.0_tda_layer_t:-1_tda_layer_s:-1_dim_0_mean_trial_4")


def official_save(path, state):
    """Saved as the official codes save: numpy floats in it (RepDistiller's accuracies, optimizer state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


@pytest.fixture()
def official_roots(reference_dir, tmp_path):
    released = reference_dir / "official_released" / "topkd" / "save_s_tda_ripsnet_t_models_final" / TOPKD_RUN
    if not released.is_dir():
        pytest.skip(f"official released run not found at {released}")
    s_root = tmp_path / "save_s_tda_ripsnet_t_models_final"
    run = s_root / TOPKD_RUN
    run.mkdir(parents=True)
    shutil.copyfile(released / "resnet20_best.pth", run / "resnet20_best.pth")  # byte copy of the release
    # the official <arch>_last.pth pickles its argparse options: the safe loader must refuse it
    official_save(run / "resnet20_last.pth", {"opt": argparse.Namespace(lr=0.05), "model": {}})
    small = {"fc.weight": torch.zeros(1)}
    rep = tmp_path / "save" / "student_model"
    official_save(rep / "S:MobileNetV2_T:ResNet50_cifar100_kd_r:0.1_a:0.9_b:0.0_1" / "MobileNetV2_best.pth",
                  {"epoch": 230, "model": small, "best_acc": torch.tensor(67.5)})
    for epoch, acc in ((200, 60.0), (240, 67.25)):  # the last per-epoch checkpoint gives the last accuracy
        official_save(rep / "S:MobileNetV2_T:ResNet50_cifar100_kd_r:0.1_a:0.9_b:0.0_1" / f"ckpt_epoch_{epoch}.pth",
                      {"epoch": epoch, "model": small, "accuracy": np.float64(acc),
                       "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(0.01)}]}})
    official_save(rep / "S:wrn_16_2_T:wrn_40_2_cifar100_hint_r:1.0_a:0.0_b:100.0_2" / "wrn_16_2_best.pth",
                  {"epoch": 240, "model": small, "best_acc": np.float64(73.0)})
    (rep / "S:wrn_16_2_T:wrn_40_2_cifar100_hint_r:1.0_a:0.0_b:100.0_2" / "wrn_16_2_last.pth").write_bytes(b"trunc")
    teacher = tmp_path / "save" / "models" / "ResNet50_cifar100_lr_0.05_decay_0.0005_trial_0"
    official_save(teacher / "ResNet50_best.pth", {"epoch": 240, "model": small, "best_acc": np.float64(79.5)})
    return s_root, rep, tmp_path / "save" / "models"


def test_collector_reads_official_run_folders(official_roots, tmp_path):
    md_path, csv_path, rows = cr.collect(official_roots, tmp_path / "table")
    got = {(r.teacher, r.student, r.method): r for r in rows}
    assert set(got) == {("resnet56", "resnet20", "kd+topkd"), ("ResNet50", "mobilenetv2", "kd"),
                        ("wrn_40_2", "wrn_16_2", "fitnet"), ("", "ResNet50", "ce")}
    topkd = got[("resnet56", "resnet20", "kd+topkd")]
    assert topkd.best.mean == pytest.approx(71.74, abs=1e-4)
    # what the names give, where the rows differ
    assert topkd.config == ("alpha 2 batch_size 64 beta 0.8 delta 5 dim 0 epochs 240 gamma 1 kd_T 4 lr 0.05 "
                            "operator mean tda_layer_s -1 tda_layer_t -1 weight_decay 0.0005")
    assert topkd.last.mean is None
    assert topkd.last.text().startswith("n/a: checkpoint unreadable: resnet20_last.pth needs argparse.Namespace")
    rep = got[("ResNet50", "mobilenetv2", "kd")]
    assert (rep.best.mean, rep.last.mean, rep.config) == (67.5, 67.25, "alpha 0.9 beta 0 gamma 0.1")
    assert got[("", "ResNet50", "ce")].best.mean == 79.5
    assert got[("wrn_40_2", "wrn_16_2", "fitnet")].last.text().startswith(
        "n/a: checkpoint unreadable: checkpoint wrn_16_2_last.pth cannot be read (its contents are damaged or cut short)")
    md = md_path.read_text()
    line = next(l for l in md.splitlines() if "kd+topkd" in l)
    assert "71.74 best / 71.66 last (TopKD log)" in line and "n/a: checkpoint unreadable" in line
    # published references follow the canonical names: RepDistiller's MobileNetV2 row, ResNet50 -> MobileNetV2
    assert "67.35 last (RepDistiller)" in next(l for l in md.splitlines() if "| mobilenetv2 | kd |" in l)
    assert "73.58 last (RepDistiller)" in next(l for l in md.splitlines() if "| fitnet |" in l)
    for l in md.split("\n\n")[0].splitlines()[2:]:  # no silent blank accuracy cell
        cells = [c.strip() for c in l.strip("|").split("|")]
        assert cells[6] and cells[7], l
    table = {r["method"]: r for r in csv.DictReader(io.StringIO(csv_path.read_text()))}
    assert table["kd+topkd"]["last_mean"] == "" and "last: n/a: checkpoint unreadable" in table["kd+topkd"]["notes"]


# DKD's beta per pair, written out from mdistiller's configs/cifar100/dkd/*.yaml (BETA: 2.0 / 6.0; the pairs
# without BETA, or without a config, take mdistiller/engine/cfg.py's CFG.DKD.BETA = 8.0).
DKD_BETA = {("resnet56", "resnet20"): 2.0, ("resnet110", "resnet32"): 2.0, ("resnet32x4", "resnet8x4"): 8.0,
            ("wrn_40_2", "wrn_16_2"): 6.0, ("wrn_40_2", "wrn_40_1"): 6.0, ("vgg13", "vgg8"): 6.0,
            ("vgg13", "mobilenetv2"): 6.0, ("ResNet50", "mobilenetv2"): 8.0, ("ResNet50", "vgg8"): 8.0,
            ("resnet32x4", "shufflev1"): 8.0, ("resnet32x4", "shufflev2"): 8.0, ("wrn_40_2", "shufflev1"): 8.0}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["cifar100_homogeneous.sh", "cifar100_heterogeneous.sh"])
def test_reproduce_dkd_uses_per_pair_beta(script, repo_root, tmp_path):
    commands = [parse_command(c) for c in shared_dry_run(repo_root, script)]  # BASELINES="dkd kd"
    students = [ns for s, _, ns in commands if s == "train_student.py"]
    dkd = {(ns.model_t, ns.model_s): ns.dkd_beta for ns in students if ns.distill == "dkd"}
    assert dkd and dkd == {pair: DKD_BETA[pair] for pair in dkd}
    assert len(dkd) == 6
    # the stage-2 commands use the official teacher BatchNorm mode
    assert all(ns.teacher_bn == "batch" for s, _, ns in commands if s == "generate_PCD_PI.py")


@pytest.mark.slow
def test_imagenet_teachers_trained_only_on_request(repo_root, tmp_path):
    """imagenet.sh uses torchvision's pretrained teachers by default; TEACHER_WEIGHTS= trains them instead."""
    commands = [parse_command(c) for c in dry_run(repo_root, "imagenet.sh", tmp_path, TEACHER_WEIGHTS="")]
    teachers = [ns for s, _, ns in commands if s == "train_teacher.py"]
    assert sorted(ns.model for ns in teachers) == ["resnet34", "resnet50"]
    assert all(ns.path_t.endswith(f"{ns.model_t}_best.pth") for s, _, ns in commands if s == "train_student.py")
