"""Drop-in compatibility with the official TopKD / RepDistiller releases: their files as released (byte for
byte, from ``reference_dir/official_released``), their run-folder names, their RipsNet naming rule, their
architecture names, and refusal of pickles that would run code."""
import hashlib
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from models import load_model
from models.loading import arch_candidates
from models.run_names import parse_checkpoint_path, parse_run_name
from topkd_io import UnsafeCheckpointError, safe_load
from models import ARCH_ALIASES, build_model, model_dict, resolve_arch
from pcd.ripsnet_paths import (find_ripsnet, official_layer_tag, official_ripsnet_path, ripsnet_candidates,
                               stage3_ripsnet_path)
from topology.ripsnet import RipsNet, load_ripsnet, save_ripsnet

STUDENT_RUN = ("T:resnet56_S:resnet20_cifar100_64_KD:KD_T:4.0_epochs_240_lr_0.05_decay_0.0005_r:1.0_a:2.0_b:0.8_"
               "d:5.0_tda_layer_t:-1_tda_layer_s:-1_dim_0_mean_trial_4")
# SHA-256 prefixes of the released files (reference README): the tests read the files as released.
RELEASED = {
    f"save_s_tda_ripsnet_t_models_final/{STUDENT_RUN}/resnet20_best.pth": "4cee49bd",
    "ripsnet/result/cifar100_resnet56_batch64_FCinput_PCD_dim0/mean_best.pth": "ebcb1759",
    "ripsnet/result/cifar100_wrn_40_2_batch64_FCinput_PCD_dim0/sum_best.pth": "f1dcd2dc",
}
RIPSNETS = {"resnet56_mean": ("resnet56", "mean", [64, 64, 32, 32, 50, 100, 200, 400]),
            "wrn_40_2_sum": ("wrn_40_2", "sum", [128, 128, 64, 64, 50, 100, 200, 400])}


@pytest.fixture(scope="module")
def released(reference_dir):
    root = reference_dir / "official_released" / "topkd"
    if not root.is_dir():
        pytest.skip(f"official released files not found at {root}")
    return root


@pytest.mark.parametrize("relpath", sorted(RELEASED))
def test_released_files_are_the_released_bytes(released, relpath):
    digest = hashlib.sha256((released / relpath).read_bytes()).hexdigest()
    assert digest.startswith(RELEASED[relpath])
    if relpath.endswith("resnet20_best.pth"):  # numpy floats in its optimizer state: the allowlist is needed
        with pytest.raises(pickle.UnpicklingError):
            torch.load(released / relpath, map_location="cpu", weights_only=True)
    ckpt = safe_load(released / relpath)
    assert {"model", "optimizer", "best_acc", "epoch"} <= set(ckpt)


def test_released_student_reproduces_official_outputs(released, reference_dir):
    path = released / "save_s_tda_ripsnet_t_models_final" / STUDENT_RUN / "resnet20_best.pth"
    model, _, ckpt = load_model(str(path))  # the architecture is read from the official folder name
    assert type(model) is type(model_dict["resnet20"]()) and ckpt["epoch"] == 220
    assert float(ckpt["best_acc"]) == pytest.approx(71.74)
    ref = np.load(reference_dir / "official_outputs.npz")
    with torch.no_grad():
        feats, logits = model(torch.from_numpy(ref["x"]), is_feat=True)
    np.testing.assert_allclose(logits.numpy(), ref["resnet20_logits"], rtol=1e-5, atol=1e-4)
    for i, feat in enumerate(feats):
        expected = ref[f"resnet20_feat{i}"]
        np.testing.assert_allclose(feat.numpy().reshape(expected.shape), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("tag", sorted(RIPSNETS))
@pytest.mark.parametrize("explicit", [False, True])
def test_released_ripsnets_reproduce_official_outputs(released, reference_dir, tag, explicit):
    teacher, op, units = RIPSNETS[tag]
    path = official_ripsnet_path("cifar100", teacher, 64, -1, 0, op, root=str(released / "ripsnet" / "result"))
    kwargs = {"operator": op, "units_list": units} if explicit else {}
    model, ckpt = load_ripsnet(path, **kwargs)
    assert model.pooling == op and model.units == units
    assert ckpt["resolved"]["pooling_from"] == ("argument" if explicit else "file name")
    assert ckpt["resolved"]["units_from"] == ("argument" if explicit else "official width table")
    ref = np.load(reference_dir / "official_outputs.npz")
    x = torch.from_numpy(ref[f"ripsnet_{tag}_in"])
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), ref[f"ripsnet_{tag}_out_batched"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(model(x[0]).numpy(), ref[f"ripsnet_{tag}_out_single"], atol=1e-6, rtol=0)


def test_units_list_mismatch_names_both(released):
    path = released / "ripsnet" / "result" / "cifar100_resnet56_batch64_FCinput_PCD_dim0" / "mean_best.pth"
    with pytest.raises(ValueError) as err:
        load_ripsnet(path, units_list=[64, 30, 20, 10, 50, 100, 200, 400])  # the official parser's default
    text = str(err.value)
    assert "\n" not in text and "[64, 30, 20, 10, 50, 100, 200, 400]" in text
    assert "[64, 64, 32, 32, 50, 100, 200, 400]" in text


def test_pooling_sources(tmp_path):
    torch.manual_seed(0)
    net = RipsNet(6, pooling="sum", units=[6, 5, 4, 3, 4, 5, 6, 9], resolution=3)
    bare = {"model": net.state_dict(), "epoch": 1}
    torch.save(bare, tmp_path / "sum_last.pth")
    model, ckpt = load_ripsnet(tmp_path / "sum_last.pth")  # pooling from the name, widths from the shapes
    assert model.pooling == "sum" and model.units == [6, 5, 4, 3, 4, 5, 6, 9]
    assert ckpt["resolved"]["units_from"] == "weight shapes"
    torch.save(bare, tmp_path / "net.pth")
    with pytest.raises(ValueError, match="does not say its pooling.*--operator"):
        load_ripsnet(tmp_path / "net.pth")
    assert load_ripsnet(tmp_path / "net.pth", operator="mean")[0].pooling == "mean"
    save_ripsnet(net, tmp_path / "ours" / "sum_best.pth")  # ours stores its pooling: a contradiction is an error
    with pytest.raises(ValueError, match="--operator mean does not match .* sum pooling"):
        load_ripsnet(tmp_path / "ours" / "sum_best.pth", operator="mean")


# ------------------------------------------------------------------------------------------------
# run-folder names
# ------------------------------------------------------------------------------------------------
def test_official_run_names():
    run = parse_run_name(STUDENT_RUN)
    assert (run.layout, run.arch, run.teacher, run.dataset, run.trial) == \
        ("topkd_student", "resnet20", "resnet56", "cifar100", "4")
    assert run.settings == {"batch_size": 64, "distill": "KD", "kd_T": 4.0, "epochs": 240, "lr": 0.05,
                            "weight_decay": 0.0005, "gamma": 1.0, "alpha": 2.0, "beta": 0.8, "delta": 5.0,
                            "tda_layer_t": -1, "tda_layer_s": -1, "dim": "0", "operator": "mean"}
    assert run.as_config()["method"] == "topkd"
    plain = parse_run_name("T:resnet56_S:resnet20_cifar100_KD:KD_T:4.0_epochs_240_lr_0.05_decay_0.0005_"
                           "r:1.0_a:2.0_b:0.8_trial_1")  # the official code without --TDA True
    assert plain.arch == "resnet20" and plain.settings["delta"] is None and "method" not in plain.as_config()
    rep = parse_run_name("S:MobileNetV2_T:ResNet50_cifar100_kd_r:0.1_a:0.9_b:0.0_1")
    assert (rep.layout, rep.arch, rep.teacher, rep.trial) == ("repdistiller_student", "MobileNetV2", "ResNet50", "1")
    assert (rep.settings["distill"], rep.settings["gamma"], rep.settings["alpha"], rep.settings["beta"]) == \
        ("kd", 0.1, 0.9, 0.0)
    hint = parse_run_name("S:wrn_16_2_T:wrn_40_2_cifar100_hint_r:1.0_a:0.0_b:100.0_3")
    assert (hint.arch, hint.teacher, hint.settings["distill"], hint.trial) == ("wrn_16_2", "wrn_40_2", "hint", "3")
    teacher = parse_run_name("wrn_40_2_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_2")
    assert (teacher.layout, teacher.arch, teacher.settings["batch_size"]) == ("topkd_teacher", "wrn_40_2", 64)
    assert parse_run_name("resnet8x4_cifar100_lr_0.05_decay_0.0005_trial_0").arch == "resnet8x4"
    assert parse_run_name("ResNet50_vanilla").arch == "ResNet50"
    assert parse_run_name("cifar100_resnet56_batch64_FCinput_PCD_dim0") is None  # a RipsNet folder
    assert parse_checkpoint_path(f"/x/{STUDENT_RUN}/resnet20_best.pth").arch == "resnet20"
    assert arch_candidates("/x/save/models/wrn_40_2_vanilla/ckpt_epoch_240.pth") == ["wrn_40_2"]


# ------------------------------------------------------------------------------------------------
# RipsNet naming rule
# ------------------------------------------------------------------------------------------------
def test_official_ripsnet_naming_rule(released, tmp_path):
    root = str(released / "ripsnet" / "result")
    # the official expression of train_student.py, written out by hand for the released runs
    assert official_ripsnet_path("cifar100", "wrn_40_2", 64, -1, 0, "sum", root) == \
        os.path.join(root, "cifar100_wrn_40_2_batch64_FCinput_PCD_dim0", "sum_best.pth")
    assert official_ripsnet_path("cifar100", "resnet56", 128, -4, 1, "mean") == \
        os.path.join("ripsnet", "result", "cifar100_resnet56_batch128_layer2input_PCD_dim1", "mean_best.pth")
    assert [official_layer_tag(t) for t in (-1, 0, -5, -4, -3, "FCinput")] == \
        ["FCinput", "output", "layer1input", "layer2input", "layer3input", "FCinput"]
    with pytest.raises(ValueError, match="no tag for --tda_layer_t -2"):
        official_layer_tag(-2)
    assert find_ripsnet(root, "cifar100", "wrn_40_2", 64, -1, 0, "sum").endswith(
        "cifar100_wrn_40_2_batch64_FCinput_PCD_dim0/sum_best.pth")
    # our stage-3 layout, under ripsnet/ next to the official ripsnet/result/
    ours = tmp_path / "ripsnet" / "cifar100_resnet56_batch64_-1_dim0" / "mean_best.pth"
    assert stage3_ripsnet_path("cifar100", "resnet56", 64, -1, 0, "mean", str(tmp_path / "ripsnet")) == str(ours)
    ours.parent.mkdir(parents=True)
    ours.write_bytes(b"x")
    official_root = str(tmp_path / "ripsnet" / "result")
    assert ripsnet_candidates(official_root, "cifar100", "resnet56", 64)[-1] == str(ours)
    assert find_ripsnet(official_root, "cifar100", "resnet56", 64, -1, 0, "mean") == str(ours)
    assert find_ripsnet(str(ours.parent), "cifar100", "resnet56", 64, operator="mean") == str(ours)
    assert find_ripsnet(str(ours), "cifar100", "x", 1) == str(ours)
    with pytest.raises(FileNotFoundError, match="tried .*cifar100_resnet56_batch64_FCinput_PCD_dim0/sum_best.pth"):
        find_ripsnet(official_root, "cifar100", "resnet56", 64, -1, 0, "sum")


def test_ripsnet_trained_on_this_teachers_data_is_preferred(tmp_path, monkeypatch, caplog):
    """An official RipsNet copied into ripsnet/result/ silently replaced the RipsNet trained on this teacher's own
    stage-2 data (the official rule was tried first). Now ours is taken whatever else is found; without it, the
    official one is taken with a logged line saying why and naming the RipsNets passed over; one trained on
    another teacher's data is never taken by the search."""
    import argparse
    import logging

    from distiller.topkd import locate_ripsnet
    from topkd_io import file_sha256, save_torch

    teacher = tmp_path / "resnet56_best.pth"
    teacher.write_bytes(b"this teacher's weights")

    def save(path, teacher_sha=None):
        manifest = {"config": {"source": {"teacher": {"sha256": teacher_sha}}}} if teacher_sha else None
        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch({"model": RipsNet(64).state_dict(), "manifest": manifest}, str(path))
        return str(path)

    official = {op: save(tmp_path / official_ripsnet_path("cifar100", "resnet56", 64, -1, 0, op)) for op in ("mean", "sum")}
    ours_name = "cifar100_resnet56_batch64_-1_dim0_mean-{}/mean_best.pth"
    ours = save(tmp_path / "ripsnet" / ours_name.format("0123abcd"), file_sha256(teacher))
    other = save(tmp_path / "ripsnet" / ours_name.format("4567cdef"), "f" * 64)  # another teacher's stage-2 data
    monkeypatch.chdir(tmp_path)  # the default --rips_path is ripsnet/result
    cfg = argparse.Namespace(rips_path=None, path_t=str(teacher), dataset="cifar100", model_t="resnet56",
                             batch_size=64, tda_layer_t=-1, dim=0, operator=None)
    caplog.set_level(logging.INFO, logger="pcd.ripsnet_paths")
    assert os.path.abspath(locate_ripsnet(cfg)) == ours  # over both official poolings, with --operator left out
    cfg.operator = "mean"
    assert os.path.abspath(locate_ripsnet(cfg)) == ours
    assert not caplog.records  # the preferred choice needs no word
    os.remove(ours)
    assert os.path.abspath(locate_ripsnet(cfg)) == official["mean"]
    line = " ".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 1 and "no RipsNet trained on this teacher's stage-2 data" in line, line
    assert os.path.relpath(other) in line and "another teacher" in line  # passed over, with the reason
    os.remove(official["mean"])
    with pytest.raises(FileNotFoundError, match="another teacher"):  # only the other teacher's RipsNet is left
        locate_ripsnet(cfg)


# ------------------------------------------------------------------------------------------------
# architecture names
# ------------------------------------------------------------------------------------------------
def test_repdistiller_architecture_aliases(tmp_path):
    assert ARCH_ALIASES == {"MobileNetV2": "mobilenetv2", "ShuffleV1": "shufflev1", "ShuffleV2": "shufflev2"}
    assert [resolve_arch(n) for n in ("MobileNetV2", "ShuffleV1", "ShuffleV2", "ResNet50", "resnet50")] == \
        ["mobilenetv2", "shufflev1", "shufflev2", "ResNet50", "resnet50"]
    # RepDistiller's MobileNetV2 is the width-0.5 CIFAR net: 100 classes, same parameter count as ours
    assert sum(p.numel() for p in build_model("MobileNetV2", 100).parameters()) == \
        sum(p.numel() for p in model_dict["mobilenetv2"](num_classes=100).parameters())
    with pytest.raises(ValueError, match=r"unknown architecture 'mobilenetV2' \(--model_s\).*MobileNetV2"):
        resolve_arch("mobilenetV2", "--model_s")
    # a RepDistiller student folder: S:ShuffleV1_T:... /ShuffleV1_best.pth
    folder = tmp_path / "S:ShuffleV1_T:resnet32x4_cifar100_kd_r:0.1_a:0.9_b:0.0_1"
    folder.mkdir()
    torch.save({"model": model_dict["shufflev1"](num_classes=100).state_dict(), "best_acc": np.float64(70.0)},
               folder / "ShuffleV1_best.pth")
    model, _, ckpt = load_model(str(folder / "ShuffleV1_best.pth"))
    assert type(model).__name__ == type(model_dict["shufflev1"]()).__name__ and ckpt["best_acc"] == 70.0
    assert load_model(str(folder / "ShuffleV1_best.pth"), arch="ShuffleV1")[0] is not None


# ------------------------------------------------------------------------------------------------
# pickles that would run code
# ------------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (shutil.copyfile, (__file__, self.marker))  # would write a file when unpickled


@pytest.mark.parametrize("loader", ["teacher", "ripsnet", "checkpoint"])
def test_crafted_pickle_is_refused(tmp_path, loader):
    from topkd_io import load_checkpoint

    marker = tmp_path / "ran.txt"
    path = tmp_path / "mean_best.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload(str(marker))}, path)
    call = {"teacher": lambda: load_model(str(path), arch="resnet8"), "ripsnet": lambda: load_ripsnet(path),
            "checkpoint": lambda: load_checkpoint(str(path))}[loader]
    with pytest.raises(UnsafeCheckpointError, match="shutil.copyfile.*refusing"):
        call()
    assert not marker.exists()
