"""tools/collect_results.py on synthetic run folders with hand-chosen accuracies, and the
scripts/reproduce/*.sh commands (DRY_RUN=1) parsed by each stage script's own parser."""
import csv
import importlib
import io
import json
import math
import os
import re
import shlex
import shutil
from pathlib import Path
import statistics
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from engine.config import parse_config
from tools import collect_results as cr


def fake_run(folder, arch, cfg, best, last):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save({"arch": arch, "epoch": 3, "best_acc": best, "last_acc": None}, folder / f"{arch}_best.pth")
    torch.save({"arch": arch, "epoch": 5, "best_acc": best, "last_acc": last}, folder / f"{arch}_last.pth")


@pytest.fixture()
def roots(tmp_path):
    t_root, s_root = tmp_path / "save_t_models", tmp_path / "save_s_models"
    teachers = {}
    for trial, (best, last) in enumerate([(73.0, 72.5), (74.0, 73.5)]):
        d = t_root / f"resnet56_cifar100_lr_0.05_decay_0.0005_trial_{trial}"
        fake_run(d, "resnet56", {"model": "resnet56", "dataset": "cifar100", "input": "image", "lr": 0.05,
                                  "weight_decay": 0.0005, "epochs": 240, "trial": trial}, best, last)
        teachers[trial] = d / "resnet56_best.pth"
    base = {"model_s": "resnet20", "model_t": "resnet56", "dataset": "cifar100", "distill": "kd", "gamma": 1.0,
            "kd_T": 4.0, "lr": 0.05, "epochs": 240, "beta": 0.8, "method": "topkd"}
    topkd = [(71.0, 70.0), (72.0, 71.0), (73.0, 72.0)]
    for trial, (best, last) in enumerate(topkd):
        cfg = dict(base, alpha=2.0, delta=5.0, trial=trial, path_t=str(teachers[0]))
        fake_run(s_root / f"S-resnet20_T-resnet56_cifar100_kd+topkd_trial_{trial}", "resnet20", cfg, best, last)
    cfg = dict(base, alpha=1.0, delta=0.0, trial=0, path_t=str(teachers[0]))
    fake_run(s_root / "S-resnet20_T-resnet56_cifar100_kd_trial_0", "resnet20", cfg, 70.5, 70.25)
    # an official-style folder without config.yaml: parsed from its name, best only
    official = s_root / "official" / ("T:wrn_40_2_S:shufflev1_cifar100_64_KD:KD_T:4.0_epochs_240_lr_0.01_decay_0.0005_"
                                      "r:1.0_a:4.0_b:0.8_d:5.0_tda_layer_t:-1_tda_layer_s:-1_dim_0_sum_trial_5")
    official.mkdir(parents=True)
    torch.save({"model": {}, "best_acc": 76.4, "epoch": 220}, official / "shufflev1_best.pth")
    # a RipsNet folder is not a training run
    (s_root / "ripsnet").mkdir()
    (s_root / "ripsnet" / "config.yaml").write_text(yaml.safe_dump({"data_dir": "x", "pooling": "mean"}))
    torch.save({"model": {}, "pooling": "mean"}, s_root / "ripsnet" / "mean_best.pth")
    return t_root, s_root


def rows_by(rows):
    return {(r.teacher, r.student, r.method): r for r in rows}


def test_groups_means_and_stds(roots, tmp_path):
    md_path, csv_path, rows = cr.collect(roots, tmp_path / "out" / "results")
    got = rows_by(rows)
    # a network trained alone is a "ce" row with no teacher
    assert set(got) == {("", "resnet56", "ce"), ("resnet56", "resnet20", "kd+topkd"),
                        ("resnet56", "resnet20", "kd"), ("wrn_40_2", "shufflev1", "kd+topkd")}
    topkd = got[("resnet56", "resnet20", "kd+topkd")]
    assert topkd.trials == 3
    assert topkd.best.mean == pytest.approx(72.0) and topkd.best.std == pytest.approx(1.0)
    assert topkd.last.mean == pytest.approx(71.0) and topkd.last.std == pytest.approx(1.0)
    # the teacher column uses the teacher the students were trained from (--path_t = trial 0)
    assert topkd.teacher_acc.mean == pytest.approx(73.0)
    teacher = got[("", "resnet56", "ce")]
    assert teacher.best.mean == pytest.approx(73.5)
    assert teacher.best.std == pytest.approx(statistics.stdev([73.0, 74.0]))
    assert got[("wrn_40_2", "shufflev1", "kd+topkd")].best.mean == pytest.approx(76.4)
    assert got[("wrn_40_2", "shufflev1", "kd+topkd")].last.mean is None

    md = md_path.read_text()
    line = next(l for l in md.splitlines() if "kd+topkd" in l)
    assert "72.00 ± 1.00" in line and "71.00 ± 1.00" in line and "| 3 |" in line
    assert "71.74 best / 71.66 last (TopKD log)" in line  # published reference, from the official logs
    assert "-0.66 (last, TopKD log)" in line  # Δ: our last mean 71.00 minus the log's last 71.66

    kd_line = next(l for l in md.splitlines() if "| kd |" in l and "resnet20" in l)
    # RepDistiller's README numbers are last-epoch ones (its train_student.py says so)
    assert "70.50" in kd_line and "70.66 last (RepDistiller)" in kd_line and "-0.41 (last, RepDistiller)" in kd_line
    teacher_line = next(l for l in md.splitlines() if "| ce |" in l)
    assert "73.50 ± 0.71" in teacher_line and "72.34 last (RepDistiller)" in teacher_line
    # baselines of one student sit next to each other: kd, then kd+topkd
    order = [(r.teacher, r.student, r.method) for r in rows if r.student == "resnet20"]
    assert order == [("resnet56", "resnet20", "kd"), ("resnet56", "resnet20", "kd+topkd")]
    ce = next(r for r in json.loads(md_path.with_suffix(".json").read_text()) if r["method"] == "ce")
    assert ce["student"] == "resnet56" and ce["stats"]["best"]["mean"] == pytest.approx(73.5)

    table = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    row = next(r for r in table if r["method"] == "kd+topkd")
    assert float(row["best_mean"]) == pytest.approx(72.0) and float(row["best_std"]) == pytest.approx(1.0)
    assert float(row["last_mean"]) == pytest.approx(71.0) and row["trials"] == "3"
    assert float(row["teacher_mean"]) == pytest.approx(73.0)
    # the config column: the options that are not the same in every row (epochs 240 is, and is said once)
    assert row["config"] == "alpha 2 beta 0.8 delta 5 gamma 1 kd_T 4 lr 0.05"
    assert "\nEqual in every row (not repeated in the config column): epochs 240.\n" in md


def test_cli_and_errors(roots, tmp_path, capsys):
    md = cr.main([str(r) for r in roots] + ["--out", str(tmp_path / "table")])
    assert md.name == "table.md" and (tmp_path / "table.csv").is_file()
    assert "kd+topkd" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="none of the run roots"):
        cr.collect([tmp_path / "missing"], tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no run folder"):
        cr.collect([tmp_path / "empty"], tmp_path / "x")


def test_references_are_published_numbers_only():
    # every reference names its source; spot-check against the RepDistiller README and the TopKD logs
    for refs in list(cr.CE_REFERENCES.values()) + list(cr.DISTILL_REFERENCES.values()):
        assert all(r.source in (cr.TOPKD_LOGS, cr.REPDISTILLER, cr.MDISTILLER, cr.REVIEWKD, cr.OFD) for r in refs)
    assert cr.DISTILL_REFERENCES[("cifar100", "wrn_40_2", "shufflev1", "kd+topkd")][0] == \
        cr.Reference(76.40, 76.06, cr.TOPKD_LOGS)
    # RepDistiller's numbers are its last epoch (its train_student.py: "reported ... from the last epoch")
    kd = cr.DISTILL_REFERENCES[("cifar100", "resnet32x4", "resnet8x4", "kd")][0]
    assert (kd.best, kd.last) == (None, 73.33)
    assert all(r.best is None for refs in cr.DISTILL_REFERENCES.values() for r in refs if r.source == cr.REPDISTILLER)


# ------------------------------------------------------------------------------------------------
# scripts/reproduce/*.sh: DRY_RUN=1 prints commands that every stage script's parser accepts
# ------------------------------------------------------------------------------------------------
SCRIPT_PAIRS = {
    "cifar100_homogeneous.sh": {("resnet56", "resnet20"), ("resnet110", "resnet32"), ("resnet32x4", "resnet8x4"),
                                ("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"), ("vgg13", "vgg8")},
    "cifar100_heterogeneous.sh": {("vgg13", "mobilenetv2"), ("ResNet50", "mobilenetv2"), ("ResNet50", "vgg8"),
                                  ("resnet32x4", "shufflev1"), ("resnet32x4", "shufflev2"),
                                  ("wrn_40_2", "shufflev1")},
    "imagenet.sh": {("resnet34", "resnet18"), ("resnet50", "MobileNetV1")},
}
# stage script -> (module, arch key for parse_config or None = plain parse_args)
STAGES = {"train_teacher.py": ("train_teacher", "model"), "generate_PCD_PI.py": ("generate_PCD_PI", None),
          "train_ripsnet.py": ("train_ripsnet", None), "train_student.py": ("train_student", "model_s"),
          "tools/collect_results.py": ("tools.collect_results", None)}


def dry_run(repo_root, script, tmp_path, **env):
    full_env = dict(os.environ, DRY_RUN="1", PY=sys.executable, T_ROOT=str(tmp_path / "t"),
                    S_ROOT=str(tmp_path / "s"), PCD_ROOT=str(tmp_path / "pcd"), RIPS_ROOT=str(tmp_path / "rips"),
                    **env)
    done = subprocess.run(["bash", str(repo_root / "scripts" / "reproduce" / script), "--device", "cpu"],
                          env=full_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]


_SHARED = {}


def shared_dry_run(repo_root, script):
    """``dry_run`` with TRIALS=2 BASELINES="dkd kd" into fixed empty roots, once per script and test session
    (each dry run starts one planner process, the costly part): read by several tests."""
    if script not in _SHARED:
        import tempfile

        _SHARED[script] = dry_run(repo_root, script, Path(tempfile.mkdtemp(prefix="dry_run_")), TRIALS="2",
                                  BASELINES="dkd kd")
    return _SHARED[script]


def parse_command(tokens):
    at = next(i for i, t in enumerate(tokens) if t.endswith(".py"))
    script, args = tokens[at], tokens[at + 1:]
    module, arch_key = STAGES[script]
    parser = importlib.import_module(module).build_parser()
    ns = parse_config(parser, args, arch_key=arch_key) if arch_key else parser.parse_args(args)
    return script, tokens[:at], ns


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPT_PAIRS))
def test_reproduce_scripts_dry_run_parse(script, repo_root, tmp_path):
    assert subprocess.run(["bash", "-n", str(repo_root / "scripts" / "reproduce" / script)]).returncode == 0
    commands = [parse_command(c) for c in shared_dry_run(repo_root, script)]
    students = [ns for s, _, ns in commands if s == "train_student.py" and ns.delta]  # not the baselines
    assert {(ns.model_t, ns.model_s) for ns in students} == SCRIPT_PAIRS[script]
    assert len(students) == 2 * len(SCRIPT_PAIRS[script]) and {ns.trial for ns in students} == {0, 1}
    assert all(ns.delta == 5 and ns.method == "topkd" and ns.rips_path and ns.device == "cpu" for ns in students)
    stages = [s for s, _, _ in commands]
    pretrained = script == "imagenet.sh"  # its default teachers: torchvision's pretrained weights, not trained
    for stage in ("train_teacher.py", "generate_PCD_PI.py", "train_ripsnet.py"):
        expected = 0 if pretrained and stage == "train_teacher.py" else len(SCRIPT_PAIRS[script])
        assert stages.count(stage) == expected  # once per pair (nothing exists yet)
    assert stages[-1] == "tools/collect_results.py"
    launchers = {tuple(prefix) for s, prefix, _ in commands if s in ("train_teacher.py", "train_student.py")}
    # torchrun as a module of PY's environment: a bare `torchrun` is not found without an activated .venv
    assert launchers == ({(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=8")}
                         if script == "imagenet.sh" else {(sys.executable,)})
    # stage outputs chain: stage 2 reads the teacher of stage 1, the student the RipsNet of stage 3
    teacher_dirs = {ns.run_dir for s, _, ns in commands if s == "train_teacher.py"}
    if pretrained:
        from models.pretrained import arch_from_torchvision_file

        assert all(arch_from_torchvision_file(ns.path_t) == ns.model_t for s, _, ns in commands
                   if s in ("generate_PCD_PI.py", "train_student.py"))
    else:
        assert all(os.path.dirname(ns.path_t) in teacher_dirs for s, _, ns in commands if s == "generate_PCD_PI.py")
    rips_dirs = {ns.run_dir for s, _, ns in commands if s == "train_ripsnet.py"}
    assert all(os.path.dirname(ns.rips_path) in rips_dirs for ns in students)


@pytest.mark.slow
def test_reproduce_skips_only_runs_of_the_same_settings(repo_root, tmp_path, monkeypatch):
    """Skip means "done with these settings": the stages themselves say whether their folder holds a
    finished run of exactly these settings. After a real (tiny) teacher and PASSES=2 stage 2 on a fake
    CIFAR-100, a dry run with PASSES=2 skips both, and one with PASSES=8 plans stage 2 again, in its own folder
    (it used to print "skip stage 2 ... manifest.yaml is complete")."""
    import generate_PCD_PI
    import train_teacher
    from official_tree import fake_md5
    from test_datasets import _write_cifar100

    fake_md5(monkeypatch)
    _write_cifar100(tmp_path / "data", n_train=100, n_test=8)
    env = dict(PAIRS_FILTER="resnet56", T_EPOCHS="1", S_EPOCHS="1", DATA_ROOT=str(tmp_path / "data"))
    first = dry_run(repo_root, "cifar100_homogeneous.sh", tmp_path, PASSES="2", **env)
    scripts = [next(t for t in c if t.endswith(".py")) for c in first]
    assert scripts == ["train_teacher.py", "generate_PCD_PI.py", "train_ripsnet.py", "train_student.py",
                       "tools/collect_results.py"]
    teacher_args, pcd_args = (c[c.index(s) + 1:] for c, s in zip(first[:2], scripts[:2]))
    train_teacher.main(teacher_args + ["--num_workers", "0", "--threads", "1"])
    # stage 2's folder is named after the teacher's SHA-256: the dry run could only plan it as "...-pending"
    assert pcd_args[pcd_args.index("--out_dir") + 1].endswith("-pending")
    pcd_args = pcd_args[:pcd_args.index("--out_dir")] + pcd_args[pcd_args.index("--out_dir") + 2:]
    generate_PCD_PI.main(pcd_args + ["--num_workers", "0", "--no_progress"])
    (made,) = (tmp_path / "pcd").iterdir()

    same = [parse_command(c) for c in dry_run(repo_root, "cifar100_homogeneous.sh", tmp_path, PASSES="2", **env)]
    assert [s for s, _, _ in same] == ["train_ripsnet.py", "train_student.py", "tools/collect_results.py"]
    assert same[0][2].data_dir == str(made)  # stage 3 reads the finished stage-2 folder
    changed = [parse_command(c) for c in dry_run(repo_root, "cifar100_homogeneous.sh", tmp_path, PASSES="8", **env)]
    assert [s for s, _, _ in changed] == ["generate_PCD_PI.py", "train_ripsnet.py", "train_student.py",
                                          "tools/collect_results.py"]
    assert changed[0][2].passes == 8 and changed[0][2].out_dir != str(made)


@pytest.mark.slow
def test_reproduce_baselines(repo_root, tmp_path):
    """BASELINES adds one student per method and trial with the method's own weights and no topology; "ce"
    (once refused) is the student alone, trained with cross-entropy by train_teacher.py with the students'
    schedule."""
    commands = [parse_command(c) for c in dry_run(repo_root, "cifar100_homogeneous.sh", tmp_path,
                                                  PAIRS_FILTER="resnet56", BASELINES="ce kd crd at")]
    (ce,) = [ns for s, _, ns in commands if s == "train_teacher.py" and ns.model == "resnet20"]
    assert ce.save_dir == str(tmp_path / "s") and ce.trial == 0 and ce.lr == 0.05 and ce.epochs == 240
    students = [ns for s, _, ns in commands if s == "train_student.py"]
    baselines = {ns.distill: ns for ns in students if not ns.delta}
    assert sorted(baselines) == ["at", "crd", "kd"] and len(students) == 4
    for method, ns in baselines.items():
        # the method's defaults apply, except KD: RepDistiller's script passes -r 0.1 -a 0.9 (its -r default is 1)
        want = (0.1, 0.9, None) if method == "kd" else (None, None, None)
        assert (ns.gamma, ns.alpha, ns.beta) == want
        # the stage's own folder name; its identity hash is pending until the teacher exists (a dry run)
        assert re.fullmatch(rf"S-resnet20_T-resnet56_cifar100_{method}_r-.*_trial_0-pending", os.path.basename(ns.run_dir))
    done = subprocess.run(["bash", str(repo_root / "scripts" / "reproduce" / "cifar100_homogeneous.sh")],
                          env=dict(os.environ, DRY_RUN="1", PY=sys.executable, BASELINES="kd nope"), capture_output=True, text=True)
    assert done.returncode == 2 and "unknown method 'nope'" in done.stderr and done.stdout == ""


def test_baseline_references_and_aliases(tmp_path):
    """A CRD run and an AT run (under its alias) get RepDistiller's published rows as references."""
    s_root = tmp_path / "s"
    base = {"model_s": "resnet8x4", "model_t": "resnet32x4", "dataset": "cifar100", "gamma": 1.0, "alpha": 0.0,
            "kd_T": 4.0, "lr": 0.05, "epochs": 240, "delta": 0.0, "trial": 0, "path_t": str(tmp_path / "t.pth")}
    fake_run(s_root / "crd", "resnet8x4", dict(base, distill="crd", beta=0.8), 75.0, 74.5)
    fake_run(s_root / "at", "resnet8x4", dict(base, distill="attention", beta=1000.0), 73.0, 72.5)
    md_path, _, rows = cr.collect([s_root], tmp_path / "out")
    assert {r.method for r in rows} == {"crd", "at"}
    md = md_path.read_text()
    assert "75.51 last (RepDistiller)" in next(l for l in md.splitlines() if "| crd |" in l)
    assert "73.44 last (RepDistiller)" in next(l for l in md.splitlines() if "| at |" in l)


# ------------------------------------------------------------------------------------------------
# Rows are the runs' recorded identities (trial and seed left out)
# ------------------------------------------------------------------------------------------------
from engine.record import Identity  # noqa: E402
from topkd_io import load_checkpoint, save_torch, write_yaml  # noqa: E402

DKD = {"model_s": "resnet8", "model_t": "resnet20", "dataset": "digits", "distill": "dkd", "gamma": 1.0,
       "alpha": 0.0, "beta": 1.0, "delta": 0.0, "kd_T": 4.0, "dkd_alpha": 1.0, "dkd_beta": 8.0, "lr": 0.05,
       "epochs": 1, "batch_size": 64}
TOPKD = dict(DKD, distill="kd", alpha=1.0, delta=5.0, method="topkd", dim=0, operator="mean")
for _key in ("dkd_alpha", "dkd_beta"):
    del TOPKD[_key]
TEACHER_SHA, RIPS_A, RIPS_B = "1" * 64, "ebcb1759" + "a" * 56, "fb3fa32e" + "b" * 56


def recorded_run(folder, options, inputs, best, last, *, trial=0, date="2026-01-01T00:00:00+00:00",
                 commit="a" * 40, dirty=False, weights=None):
    """A run folder as the training stages leave it: config.yaml (the options, ``identity`` and
    ``provenance``) and best/last checkpoints holding the config and a one-tensor model, written with the
    project's writers. Its seed is the trial (the stages' rule); ``weights``: the model's value (default: the
    trial)."""
    arch = options.get("model_s") or options["model"]
    seed = trial
    identity = Identity(dict(options, trial=trial, seed=seed), inputs).to_dict()
    cfg = dict(options, **{k: f"/runs/{k}.pth" for k in inputs}, trial=trial, seed=seed, identity=identity,
               provenance={"commit": commit, "dirty": dirty, "date": date,
                           "inputs": {k: {"path": f"/runs/{k}.pth", "sha256": v} for k, v in inputs.items()}})
    folder.mkdir(parents=True)
    write_yaml(folder / "config.yaml", cfg)
    model = {"w": torch.full((2,), float(trial if weights is None else weights))}
    save_torch({"arch": arch, "epoch": 1, "model": model, "config": cfg, "best_acc": best}, folder / f"{arch}_best.pth")
    save_torch({"arch": arch, "epoch": 1, "model": model, "config": cfg, "best_acc": best, "last_acc": last},
               folder / f"{arch}_last.pth")
    return folder


def collected(tmp_path):
    md, _, rows = cr.collect([tmp_path / "runs"], tmp_path / "table")
    table = json.loads(md.with_suffix(".json").read_text())
    return rows, md.read_text(), table


def test_runs_differing_only_in_a_method_option_are_two_rows(tmp_path):
    """Two DKD runs with --dkd_beta 2 and 8 (two trials each) became one row `trials 4`, and the config
    column showed no dkd_beta."""
    for beta in (2.0, 8.0):
        for trial in (0, 1):
            recorded_run(tmp_path / "runs" / f"dkd_b{beta:g}_{trial}", dict(DKD, dkd_beta=beta),
                         {"path_t": TEACHER_SHA}, 60.0 + beta + trial, 60.0 + beta, trial=trial)
    rows, md, table = collected(tmp_path)
    assert sorted((r.config, r.trials, r.best.mean) for r in rows) == [("dkd_beta 2", 2, 62.5),
                                                                       ("dkd_beta 8", 2, 68.5)]
    # the options every row shares are said once, under the table, not in each cell
    assert "dkd_alpha 1" in md.split("\n\n")[1] and "lr 0.05" in md.split("\n\n")[1]
    assert {r["options"]["dkd_beta"] for r in table} == {2.0, 8.0}
    assert all("trial" not in r["options"] and "seed" not in r["options"] for r in table)


def test_runs_with_other_ripsnets_are_two_rows(tmp_path):
    """Two KD+TopKD trials trained with RipsNet ebcb1759 and two with fb3fa32e were one row (`trials 4`)."""
    for rips in (RIPS_A, RIPS_B):
        for trial in (0, 1):
            recorded_run(tmp_path / "runs" / f"topkd_{rips[:8]}_{trial}", TOPKD,
                         {"path_t": TEACHER_SHA, "rips_path": rips}, 70.0 + trial, 70.0, trial=trial)
    rows, md, table = collected(tmp_path)
    assert sorted((r.config, r.trials) for r in rows) == [("rips_path ebcb1759", 2), ("rips_path fb3fa32e", 2)]
    assert {r["inputs"]["rips_path"] for r in table} == {RIPS_A, RIPS_B}
    assert all(r.method == "kd+topkd" and r.teacher_sha == TEACHER_SHA for r in rows)


@pytest.mark.parametrize("runs, cells", [
    ([(dict(TOPKD, world_size=1), {"path_t": TEACHER_SHA}), (dict(TOPKD, world_size=2), {"path_t": TEACHER_SHA})],
     ["world_size 1", "world_size 2"]),
    ([(TOPKD, {"path_t": TEACHER_SHA, "data": "1" * 64}), (TOPKD, {"path_t": TEACHER_SHA, "data": "2" * 64})],
     ["data 11111111", "data 22222222"]),
])
def test_any_recorded_option_or_input_splits_rows(tmp_path, runs, cells):
    """Whatever a run's identity records (here an option and an input the collector knows nothing of) parts rows."""
    for i, (options, inputs) in enumerate(runs):
        recorded_run(tmp_path / "runs" / f"run_{i}", options, inputs, 70.0, 70.0)
    rows, _, _ = collected(tmp_path)
    assert sorted(r.config for r in rows) == cells


def test_a_repeated_trial_is_one_run_the_newest(tmp_path, capsys):
    """Trial 0 trained twice (same settings, same seed, two run folders) counted as two trials."""
    runs = tmp_path / "runs"
    recorded_run(runs / "a" / "kd_0", TOPKD, {"path_t": TEACHER_SHA}, 60.0, 59.0, date="2026-01-01T10:00:00+00:00")
    recorded_run(runs / "b" / "kd_0", TOPKD, {"path_t": TEACHER_SHA}, 80.0, 79.0, weights=5.0,
                 date="2026-01-02T10:00:00+00:00")
    recorded_run(runs / "a" / "kd_1", TOPKD, {"path_t": TEACHER_SHA}, 70.0, 69.0, trial=1)
    (row,), md, (entry,) = collected(tmp_path)
    assert row.trials == 2 and row.best.mean == pytest.approx(75.0) and row.last.mean == pytest.approx(74.0)
    assert sorted(row.runs) == [str(runs / "a" / "kd_1"), str(runs / "b" / "kd_0")]
    assert entry["left_out"] == [str(runs / "a" / "kd_0")]
    (note,) = entry["notes"]
    assert "seed 0" in note and str(runs / "a" / "kd_0") in note and "newest by record date 2026-01-02" in note
    assert note in capsys.readouterr().err
    assert "| 2 (1 repeat left out) |" in md


def test_copies_of_one_run_count_once(tmp_path, capsys):
    """A run folder copied six times counted as six trials."""
    runs = tmp_path / "runs"
    first = recorded_run(runs / "kd_0", TOPKD, {"path_t": TEACHER_SHA}, 71.0, 70.0)
    for i in range(5):
        shutil.copytree(first, runs / f"copy_{i}")
    (row,), md, (entry,) = collected(tmp_path)
    assert row.trials == 1 and row.best.mean == 71.0 and len(entry["left_out"]) == 5
    assert all("copy" in n and "same checkpoint" in n for n in entry["notes"])
    assert "| 1 (5 copies counted once) |" in md
    assert len([l for l in capsys.readouterr().err.splitlines() if "copy" in l]) == 5


def test_teachers_sharing_a_name_but_not_weights_are_not_averaged(tmp_path):
    """Two teacher folders of one (official-layout) name with different weights gave `69.58 ± 33.59, trials 2`."""
    name = "resnet56_cifar100_lr_0.05_decay_0.0005_trial_0"
    for i, (acc, when) in enumerate(((93.37, 2_000_000_000), (45.79, 1_900_000_000))):
        folder = tmp_path / "runs" / f"root{i}" / name
        folder.mkdir(parents=True)
        save_torch({"model": {"w": torch.full((2,), float(i))}, "best_acc": acc}, folder / "resnet56_best.pth")
        os.utime(folder / "resnet56_best.pth", (when, when))
    (row,), md, (entry,) = collected(tmp_path)
    assert row.trials == 1 and row.best.mean == 93.37 and row.best.std is None
    (note,) = entry["notes"]
    assert note.startswith("trial 0 repeated") and "another checkpoint" in note and "newest by file mtime" in note


def test_accuracies_outside_0_100_are_refused(tmp_path):
    """`best_acc: -5` was taken as an accuracy (and averaged)."""
    runs = tmp_path / "runs"
    recorded_run(runs / "kd_0", TOPKD, {"path_t": TEACHER_SHA}, -5.0, 70.0)
    recorded_run(runs / "kd_1", TOPKD, {"path_t": TEACHER_SHA}, 70.0, 170.0, trial=1)
    (row,), md, _ = collected(tmp_path)
    assert row.best.mean == 70.0 and row.best.n == 1 and row.last.mean == 70.0 and row.last.n == 1
    assert "n/a: best_acc -5 is outside [0, 100]" in row.best.text()
    assert "n/a: last_acc 170 is outside [0, 100]" in row.last.text()


def test_commit_column(tmp_path, official_topkd_name=("T:resnet56_S:resnet20_cifar100_64_KD:KD_T:4.0_epochs_240_lr_"
                                                        "0.05_decay_0.0005_r:1.0_a:2.0_b:0.8_trial_1")):
    """The code each row was trained with was not shown: every commit of a row, dirty trees marked."""
    runs = tmp_path / "runs"
    recorded_run(runs / "kd_0", TOPKD, {"path_t": TEACHER_SHA}, 70.0, 70.0, commit="c0ffee12" + "0" * 32)
    recorded_run(runs / "kd_1", TOPKD, {"path_t": TEACHER_SHA}, 71.0, 71.0, trial=1, commit="beef3456" + "0" * 32,
                 dirty=True)
    official = runs / official_topkd_name
    official.mkdir()
    save_torch({"model": {"w": torch.zeros(1)}, "best_acc": 70.0}, official / "resnet20_best.pth")
    rows, md, table = collected(tmp_path)
    ours = next(r for r in table if r["student"] == "resnet8")
    assert ours["commits"] == ["beef3456-dirty", "c0ffee12"]
    assert "| beef3456-dirty, c0ffee12 |" in md and "| not recorded |" in md


def test_tiny_digits_sweep_rows(tmp_path):
    """End to end: real digits runs (two --dkd_beta values, one trial trained twice) -> their own rows."""
    import train_student
    import train_teacher

    base = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", "--num_workers", "0", "--device",
            "cpu", "--print_freq", "1000", "--threads", "1", "--lr_decay_epochs", "100", "--epochs", "1"]
    runs = tmp_path / "runs"
    teacher = train_teacher.main(base + ["--model", "resnet8", "--save_dir", str(runs / "t")])["best_checkpoint"]
    student = base + ["--path_t", teacher, "--model_s", "resnet8", "--distill", "dkd", "--max_steps", "2"]
    for beta, save in (("2", "s"), ("8", "s"), ("2", "again")):
        train_student.main(student + ["--dkd_beta", beta, "--save_dir", str(runs / save)])
    rows, md, table = collected(tmp_path)
    students = sorted((r.config, r.trials) for r in rows if r.method == "dkd")
    assert len(students) == 2 and [n for _, n in students] == [1, 1]
    two, eight = (c for c, _ in students)  # the cells differ in dkd_beta only
    assert "dkd_beta 2" in two.split(" | ")[0] and two.replace("dkd_beta 2", "dkd_beta 8") == eight
    repeated = next(r for r in table if r["method"] == "dkd" and r["options"]["dkd_beta"] == 2.0)
    assert len(repeated["left_out"]) == 1 and "seed 0" in repeated["notes"][0]


def test_evaluate_uses_each_runs_recorded_data_root(tmp_path, monkeypatch):
    """`collect_results.py --evaluate` evaluated every run on ./data (its --data_root default) whatever root the
    run was trained on; it now takes the run's recorded root, and stores the result beside the checkpoint of our
    own run folder."""
    import train_teacher
    from test_run_identity import _tree
    from topkd_io import load_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _tree(tmp_path / "inet", ("cat", "dog"), 3, seed=0)
    summary = train_teacher.main(["--model", "resnet8", "--epochs", "1", "--dataset", "imagenet", "--image_size", "8",
                                  "--batch_size", "6", "--data_root", str(tmp_path / "inet"), "--save_dir",
                                  str(tmp_path / "t"), "--num_workers", "0", "--device", "cpu", "--threads", "1"])
    best = summary["best_checkpoint"]
    ckpt = load_checkpoint(best)
    del ckpt["best_acc"]  # a checkpoint that records no accuracy
    save_torch(ckpt, best)
    monkeypatch.chdir(tmp_path)  # no ./data here
    rows = cr.collect([tmp_path / "t"], tmp_path / "table", evaluate=True)[2]
    assert rows[0].best.mean == pytest.approx(summary["last_acc"]) and not rows[0].best.note
    assert list(Path(best).parent.glob("eval_*_imagenet_test.yaml"))


# ------------------------------------------------------------------------------------------------
# Which accuracy, and paired differences against a baseline
# ------------------------------------------------------------------------------------------------
KD = dict(TOPKD, delta=0.0)
# six seeds of KD and of KD+TopKD (same teacher, data and settings): best, last, linear CKA
KD_SEEDS = [(70.0, 69.5, 0.80), (71.5, 70.0, 0.82), (69.0, 68.0, 0.79), (72.0, 71.5, 0.85), (70.5, 70.5, 0.81),
            (71.0, 69.0, 0.83)]
TOPKD_SEEDS = [(70.4, 69.0, 0.84), (71.0, 70.6, 0.85), (70.2, 68.9, 0.80), (72.9, 71.0, 0.88), (70.1, 69.8, 0.86),
               (72.3, 70.1, 0.83)]


def curve(best, last, epochs=12):
    """A per-epoch test top-1 list that peaks at ``best`` (epoch 3) and ends at ``last``."""
    return [best - 5.0, best - 1.0, best] + [last - 0.1 * (epochs - 4 - i) for i in range(epochs - 4)] + [last]


def scored_run(folder, options, inputs, best, last, cka, trial, epochs=12):
    recorded_run(folder, options, inputs, best, last, trial=trial)
    for name in (f"{options['model_s']}_best.pth", f"{options['model_s']}_last.pth"):
        ckpt = load_checkpoint(folder / name)
        save_torch(dict(ckpt, selected_by="test", per_epoch={"test_top1": curve(best, last, epochs)},
                        probes={"topo": {"epoch": epochs, "cka_linear": cka}}), folder / name)


def test_paired_difference_against_kd_is_scipys(tmp_path):
    """The table gave each method's mean ± std alone: a reader had to pair the seeds by hand. Each method row now
    carries its paired difference from the KD row of the same settings, as scipy's paired t-test computes it."""
    for trial in range(6):
        scored_run(tmp_path / "runs" / f"kd_{trial}", KD, {"path_t": TEACHER_SHA}, *KD_SEEDS[trial], trial)
        scored_run(tmp_path / "runs" / f"topkd_{trial}", TOPKD, {"path_t": TEACHER_SHA}, *TOPKD_SEEDS[trial], trial)
    md, _, rows = cr.collect([tmp_path / "runs"], tmp_path / "table", last_k=4)
    table = json.loads(md.with_suffix(".json").read_text())
    topkd = next(r for r in table if r["method"] == "kd+topkd")
    assert topkd["paired"]["baseline"] == "kd" and topkd["paired"]["note"] == ""
    for column, index in (("best", 0), ("last", 1), ("cka_linear", 2)):
        x, y = [s[index] for s in TOPKD_SEEDS], [s[index] for s in KD_SEEDS]
        d = np.subtract(x, y)
        half = stats.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
        got = topkd["paired"][column]
        assert got["n"] == 6 and got["mean"] == pytest.approx(d.mean())
        assert (got["low"], got["high"]) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
        assert got["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
        assert got["boot_low"] is not None  # six seeds: a bootstrap interval as well
    # the last-4 mean of each run is the mean of its logged last 4 epochs; their paired difference likewise
    lastk = [np.mean(curve(b, l)[-4:]) for b, l, _ in TOPKD_SEEDS], [np.mean(curve(b, l)[-4:]) for b, l, _ in KD_SEEDS]
    assert next(r for r in rows if r.method == "kd").stats["last_k"].mean == pytest.approx(np.mean(lastk[1]))
    assert topkd["paired"]["last_k"]["mean"] == pytest.approx(np.mean(lastk[0]) - np.mean(lastk[1]))
    assert topkd["paired"]["val_selected"] is None  # no validation split: nothing to pair
    # the CSV carries the numbers; the Markdown prints the interval, and says when it holds 0
    row = next(r for r in csv.DictReader(io.StringIO(md.with_suffix(".csv").read_text())) if r["method"] == "kd+topkd")
    assert float(row["vs_kd_best_p"]) == pytest.approx(stats.ttest_rel(*[[s[0] for s in t] for t in (TOPKD_SEEDS,
                                                                                                    KD_SEEDS)]).pvalue)
    assert row["vs_kd_best_n"] == "6" and row["vs_kd_val_selected_mean"] == ""
    text = md.read_text()
    assert "test-selected" in text and "val-selected" in text and "last-4 mean" in text
    line = next(l for l in text.split("Paired")[1].splitlines() if "| kd+topkd |" in l)
    assert cr.paired_difference([s[0] for s in TOPKD_SEEDS], [s[0] for s in KD_SEEDS]).text() in line
    assert "(CI holds 0)" in line


@pytest.mark.parametrize("options, inputs, why", [
    (TOPKD, {"path_t": "2" * 64}, "path_t"),
    (dict(TOPKD, val_fraction=0.2), {"path_t": TEACHER_SHA}, "val_fraction"),
    (TOPKD, {"path_t": TEACHER_SHA, "data": "3" * 64}, "data"),
    (dict(TOPKD, dataset="cifar10"), {"path_t": TEACHER_SHA}, "dataset"),
])
def test_rows_of_other_teacher_data_or_split_are_never_paired(tmp_path, options, inputs, why):
    """A method row is paired only with the baseline row whose runs differ from its own in the method alone."""
    for trial in range(3):
        scored_run(tmp_path / "runs" / f"kd_{trial}", KD, {"path_t": TEACHER_SHA}, *KD_SEEDS[trial], trial)
        scored_run(tmp_path / "runs" / f"topkd_{trial}", options, inputs, *TOPKD_SEEDS[trial], trial)
    md, _, _ = cr.collect([tmp_path / "runs"], tmp_path / "table")
    topkd = next(r for r in json.loads(md.with_suffix(".json").read_text()) if r["method"] == "kd+topkd")
    assert all(v is None for k, v in topkd["paired"].items() if k not in ("baseline", "note"))
    assert f"differs in {why}" in topkd["paired"]["note"]
    paired = md.read_text().split("Paired")[1]
    line = next(l for l in paired.splitlines() if "| kd+topkd |" in l)
    assert "| - |" in line and f"differs in {why}" in paired


def test_ce_baseline_and_fewer_epochs_than_k(tmp_path):
    """--baseline ce pairs with the CE-only students (--distill kd -a 0); runs of 3 epochs under --last_k 10 are
    averaged over their 3 epochs, and the table says so."""
    for trial in range(2):
        scored_run(tmp_path / "runs" / f"ce_{trial}", dict(KD, alpha=0.0), {"path_t": TEACHER_SHA},
                   *KD_SEEDS[trial], trial, epochs=3)
        scored_run(tmp_path / "runs" / f"kd_{trial}", KD, {"path_t": TEACHER_SHA}, *TOPKD_SEEDS[trial], trial,
                   epochs=3)
    md, _, rows = cr.collect([tmp_path / "runs"], tmp_path / "table", baseline="ce")
    kd = next(r for r in rows if r.method == "kd")
    want = np.mean([np.mean(curve(b, l, 3)) for b, l, _ in TOPKD_SEEDS[:2]])
    assert kd.stats["last_k"].mean == pytest.approx(want)
    assert kd.paired["best"].n == 2 and kd.paired["best"].mean == pytest.approx(
        np.mean([t[0] - k[0] for t, k in zip(TOPKD_SEEDS[:2], KD_SEEDS[:2])]))
    assert "fewer than 10 epochs" in md.read_text()
    with pytest.raises(ValueError, match="--last_k must be a positive integer"):
        cr.main([str(tmp_path / "runs"), "--out", str(tmp_path / "x"), "--last_k", "0"])


def test_tiny_runs_with_val_fraction_end_to_end(tmp_path):
    """Real digits runs with --val_fraction: the val-selected column is each run's test top-1 at its validation-
    selected epoch, the last-k mean is the mean of its logged epochs, and two methods pair by seed."""
    import train_student
    import train_teacher

    base = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", "--num_workers", "0", "--device",
            "cpu", "--print_freq", "1000", "--threads", "1", "--lr_decay_epochs", "100", "--train_fraction", "0.3",
            "--epochs", "2"]
    runs = tmp_path / "runs"
    teacher = train_teacher.main(base + ["--model", "resnet8", "--save_dir", str(runs / "t")])["best_checkpoint"]
    summaries = {}
    for method in (["--distill", "kd", "-a", "1"], ["--distill", "dkd"]):
        for seed in ("0", "1"):
            summaries[method[1], seed] = train_student.main(
                base + method + ["--path_t", teacher, "--model_s", "resnet8", "--seed", seed, "--val_fraction", "0.2",
                                 "--topo_eval_batches", "0", "--save_dir", str(runs / "s")])
    md, _, rows = cr.collect([runs], tmp_path / "table", last_k=10)
    kd, dkd = (next(r for r in rows if r.method == m) for m in ("kd", "dkd"))
    for row, method in ((kd, "kd"), (dkd, "dkd")):
        done = [summaries[method, s] for s in ("0", "1")]
        assert all(s["selected_by"] == "val" and len(s["per_epoch"]["val_top1"]) == 2 for s in done)
        assert row.stats["val_selected"].mean == pytest.approx(np.mean([s["best_acc"] for s in done]))
        assert row.stats["last_k"].mean == pytest.approx(np.mean([np.mean(s["per_epoch"]["test_top1"]) for s in done]))
        assert row.stats["best"].mean == pytest.approx(np.mean([max(s["per_epoch"]["test_top1"]) for s in done]))
    want = [summaries["dkd", s]["best_acc"] - summaries["kd", s]["best_acc"] for s in ("0", "1")]
    assert dkd.paired["val_selected"].n == 2 and dkd.paired["val_selected"].mean == pytest.approx(np.mean(want))
    assert kd.trials == dkd.trials == 2 and "5 run(s) of fewer than 10 epochs" in md.read_text()
