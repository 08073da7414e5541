"""Collect finished runs into one results table (Markdown, CSV and JSON).

    python tools/collect_results.py [ROOT ...] [--out results]      # default roots: save_t_models save_s_models
    python tools/collect_results.py ROOT --evaluate --data_root ./data   # evaluate.py for runs without accuracies

A run folder holds ``<arch>_best.pth``; official TopKD and RepDistiller folders (no config.yaml) are read from
their names (`models.run_names`), their last accuracy from the last ``ckpt_epoch_<N>.pth``. One row per
identity (every option and input file that changes a result, trial and seed left out: `engine.record`), one
run per seed (the newest; copies and repeats are named on stderr and in the table). Cells: mean ± sample std
over the trials, the teacher's top-1 (the teacher run of the checkpoint's SHA-256, never an average by
architecture), the code's commits, the published numbers and our difference from them (Δ), the topology
probe's values when a run has them; a cell that cannot be filled says why (``n/a: ...``).

Which top-1: ``best`` is the best epoch's (selected on the test set, as the papers' tables), ``last`` the last
epoch's, ``last-k mean`` the mean over each run's last ``--last_k`` epochs (its ``per_epoch`` record), and
``val-selected`` the test top-1 at the epoch chosen on the ``--val_fraction`` validation part. Below the table,
each student row is compared with the ``--baseline`` row of the same settings, seed by seed (`tools.paired`).
"""
import argparse
import csv
import datetime
import hashlib
import io
import json
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from distiller.registry import canonical_name
from engine.evaluate import default_out, evaluate_checkpoint, find_results, write_result
from engine.record import Identity, identity_of, input_sha256
from models import ARCH_ALIASES
from models.run_names import parse_run_name
from tools.paired import Paired, paired_difference
from topkd_io import (TopKDError, UnsafeCheckpointError, check_output_file, load_checkpoint, read_yaml, run_cli,
                      write_text)

# ------------------------------------------------------------------------------------------------
# Published numbers (test top-1, %; CIFAR-100 and ImageNet). Nothing here is computed by this project.
# ------------------------------------------------------------------------------------------------
# The official TopKD release (github.com/jekim5418/TopKD), its logs in save_s_tda_ripsnet_t_logs_final/ (best and
# last epoch of the logged trial; the teacher as printed there: its best checkpoint).
TOPKD_LOGS = "TopKD log"
# HobbitLong/RepDistiller README.md, "Benchmark Results on CIFAR-100": last-epoch numbers (its train_student.py,
# lines 333-334 at b84f547: "The results reported in the paper/README is from the last epoch").
REPDISTILLER = "RepDistiller"
# megvii-research/mdistiller README.md (a08d46f), its DKD and ImageNet tables: best epoch (its trainer keeps the best
# test top-1 and writes it at the end: mdistiller/engine/trainer.py, lines 61-62 and 88-90).
MDISTILLER = "mdistiller"
# dvlab-research/ReviewKD ImageNet/README.md (cede6ea): best epoch (ImageNet/imagenet_amp.py keeps best_prec1).
REVIEWKD = "ReviewKD"
# clovaai/overhaul-distillation README.md (76344a8), ImageNet top-1 error: best epoch (ImageNet/
# train_with_distillation.py keeps best_err1); stored here as 100 - error.
OFD = "OFD"


@dataclass(frozen=True)
class Reference:
    """One published number: best and/or last top-1 in percent, and its source."""

    best: Optional[float]
    last: Optional[float]
    source: str

    def text(self) -> str:
        parts = [f"{v:.2f} {label}" for v, label in ((self.best, "best"), (self.last, "last")) if v is not None]
        return f"{' / '.join(parts)} ({self.source})"


# (dataset, architecture) -> a network trained alone; (dataset, teacher, student, method) -> a distilled student
CE_REFERENCES: Dict[Tuple[str, str], List[Reference]] = {}
DISTILL_REFERENCES: Dict[Tuple[str, str, str, str], List[Reference]] = {}


def _add(key: tuple, source: str, best: Optional[float] = None, last: Optional[float] = None) -> None:
    table = DISTILL_REFERENCES if len(key) == 4 else CE_REFERENCES
    table.setdefault(key, []).append(Reference(best, last, source))


_add(("cifar100", "resnet56"), TOPKD_LOGS, best=73.50)
_add(("cifar100", "wrn_40_2"), TOPKD_LOGS, best=76.64)
_add(("cifar100", "resnet56", "resnet20", "kd+topkd"), TOPKD_LOGS, best=71.74, last=71.66)
_add(("cifar100", "wrn_40_2", "shufflev1", "kd+topkd"), TOPKD_LOGS, best=76.40, last=76.06)
for _arch, _acc in {"wrn_40_2": 75.61, "resnet56": 72.34, "resnet110": 74.31, "resnet32x4": 79.42,
                    "vgg13": 74.64, "ResNet50": 79.34, "wrn_16_2": 73.26, "wrn_40_1": 71.98,
                    "resnet20": 69.06, "resnet32": 71.14, "resnet8x4": 72.50, "vgg8": 70.36,
                    "mobilenetv2": 64.60, "shufflev1": 70.50, "shufflev2": 71.82}.items():
    _add(("cifar100", _arch), REPDISTILLER, last=_acc)
# RepDistiller's rows of the methods implemented here, its pairs in the README's column order
_REPDISTILLER_PAIRS = [("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"), ("resnet56", "resnet20"),
                       ("resnet110", "resnet20"), ("resnet110", "resnet32"), ("resnet32x4", "resnet8x4"),
                       ("vgg13", "vgg8"), ("vgg13", "mobilenetv2"), ("ResNet50", "mobilenetv2"),
                       ("ResNet50", "vgg8"), ("resnet32x4", "shufflev1"), ("resnet32x4", "shufflev2"),
                       ("wrn_40_2", "shufflev1")]
_REPDISTILLER_ROWS = {
    "kd": [74.92, 73.54, 70.66, 70.67, 73.08, 73.33, 72.98, 67.37, 67.35, 73.81, 74.07, 74.45, 74.83],
    "fitnet": [73.58, 72.24, 69.21, 68.99, 71.06, 73.50, 71.02, 64.14, 63.16, 70.69, 73.59, 73.54, 73.73],
    "at": [74.08, 72.77, 70.55, 70.22, 72.31, 73.44, 71.43, 59.40, 58.58, 71.84, 71.73, 72.73, 73.32],
    "sp": [73.83, 72.43, 69.67, 70.04, 72.69, 72.94, 72.68, 66.30, 68.08, 73.34, 73.48, 74.56, 74.52],
    "rkd": [73.35, 72.22, 69.61, 69.25, 71.82, 71.90, 71.48, 64.52, 64.43, 71.50, 72.28, 73.21, 72.21],
    "pkt": [74.54, 73.45, 70.34, 70.25, 72.61, 73.64, 72.88, 67.13, 66.52, 73.01, 74.10, 74.69, 73.89],
    "crd": [75.48, 74.14, 71.16, 71.46, 73.48, 75.51, 73.94, 69.73, 69.11, 74.30, 75.11, 75.65, 76.05],
    "cc": [73.56, 72.21, 69.63, 69.48, 71.48, 72.97, 70.71, 64.86, 65.43, 70.25, 71.14, 71.29, 71.38],
    "vid": [74.11, 73.30, 70.38, 70.16, 72.61, 73.09, 71.23, 65.56, 67.57, 70.30, 73.38, 73.40, 73.61],
    "ab": [72.50, 72.38, 69.47, 69.53, 70.98, 73.17, 70.94, 66.06, 67.20, 70.65, 73.55, 74.31, 73.34],
    "ft": [73.25, 71.59, 69.84, 70.22, 72.37, 72.86, 70.58, 61.78, 60.99, 70.29, 71.75, 72.50, 72.03],
    "fsp": [72.91, None, 69.95, 70.11, 71.89, 72.62, 70.23],  # "N/A" for wrn-40-1; no row in the second table
    "nst": [73.68, 72.24, 69.60, 69.53, 71.96, 73.30, 71.53, 58.16, 64.96, 71.28, 74.12, 74.68, 74.89],
}  # KD-SVD has no row there
for _method, _row in _REPDISTILLER_ROWS.items():
    for (_t, _s), _acc in zip(_REPDISTILLER_PAIRS, _row):
        if _acc is not None:
            _add(("cifar100", _t, _s, _method), REPDISTILLER, last=_acc)
# mdistiller's DKD rows. Its KD rows are RepDistiller's numbers (above); its last CIFAR column is headed "ResNet32x4
# MobileNet-V2", but its KD number there (74.45) is RepDistiller's resnet32x4 -> ShuffleNetV2 one and its configs
# have dkd/res32x4_shuv2.yaml and no such MobileNetV2 pair: read as ShuffleNetV2. Its README has no KD-SVD, OFD or
# ReviewKD numbers.
for (_t, _s), _acc in {("resnet56", "resnet20"): 71.97, ("resnet110", "resnet32"): 74.11,
                       ("resnet32x4", "resnet8x4"): 76.32, ("wrn_40_2", "wrn_16_2"): 76.23,
                       ("wrn_40_2", "wrn_40_1"): 74.81, ("vgg13", "vgg8"): 74.68, ("resnet32x4", "shufflev1"): 76.45,
                       ("wrn_40_2", "shufflev1"): 76.70, ("vgg13", "mobilenetv2"): 69.71,
                       ("ResNet50", "mobilenetv2"): 70.35, ("resnet32x4", "shufflev2"): 77.07}.items():
    _add(("cifar100", _t, _s, "dkd"), MDISTILLER, best=_acc)
# ImageNet top-1: resnet34 -> resnet18, resnet50 -> MobileNet (v1)
for _method, (_r18, _mv1), _source in (("kd", (71.03, 70.50), MDISTILLER), ("dkd", (71.70, 72.05), MDISTILLER),
                                       ("reviewkd", (71.61, 72.56), REVIEWKD)):
    _add(("imagenet", "resnet34", "resnet18", _method), _source, best=_r18)
    _add(("imagenet", "resnet50", "MobileNetV1", _method), _source, best=_mv1)
_add(("imagenet", "resnet50", "MobileNetV1", "ofd"), OFD, best=round(100 - 28.75, 2))

# The numeric columns: (key, title); best and last top-1 always, the topology probe's (engine.topo_eval, H0,
# each cloud divided by its diameter) when some run has them.
ACCURACY_COLUMNS = (("best", "best top-1 (test-selected)"), ("last", "last top-1"), ("last_k", "last-k mean"),
                    ("val_selected", "val-selected top-1"))
TOPO_COLUMNS = (("bottleneck_h0_norm_diam", "bottleneck H0 (/diam)"), ("wasserstein1_h0_norm_diam", "W1 H0 (/diam)"),
                ("pi_mse_h0", "PI MSE H0"), ("cka_linear", "linear CKA"))
TRIAL_OPTIONS = ("trial", "seed")  # the trials of one setting differ only in these
SHOWN_ELSEWHERE = frozenset({"dataset", "input", "model", "model_s", "model_t", "distill", "method", "path_t"})


# ------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One finished (or interrupted) training run; ``values``: key -> (number or None, why not)."""

    path: Path
    dataset: str
    arch: str
    teacher: str = ""              # the teacher's architecture; empty for CE-only runs
    method: str = "ce"
    options: Dict[str, Any] = field(default_factory=dict)  # its identity's options, trial and seed left out
    inputs: Dict[str, Any] = field(default_factory=dict)   # its identity's inputs: flag -> SHA-256
    seed: str = "seed 0"           # ``seed <n>`` (``trial <n>`` where no seed is recorded): one run per value
    values: Dict[str, Tuple[Optional[float], str]] = field(default_factory=dict)
    teacher_path: Optional[str] = None
    teacher_sha: Optional[str] = None     # SHA-256 of the teacher checkpoint the run was trained from
    teacher_top1: Optional[float] = None  # the teacher's top-1 as the student recorded it
    weights: Optional[str] = None  # SHA-256 of the final weights
    best_file: Optional[Path] = None
    checkpoint: Optional[str] = None  # SHA-256 of the best checkpoint file (equal for copies of one run)
    date: float = 0.0
    date_source: str = ""          # ``record date <ISO>`` or ``file mtime <ISO>``
    commit: str = ""               # 8 digits of the code's commit, ``-dirty`` for a modified tree
    test_top1: List[Optional[float]] = field(default_factory=list)  # every epoch's test top-1 (%), from epoch 1

    @property
    def is_student(self) -> bool:
        return bool(self.teacher)


def method_key(cfg: Dict[str, Any]) -> str:
    """Method name of a run config: ``kd``, ``kd+topkd``, ``ce`` (KD with alpha 0), ``crd`` ... (any spelling
    train_student.py accepts maps to the registered name)."""
    distill = canonical_name(str(cfg.get("distill", "kd")))
    name = "ce" if distill == "kd" and not cfg.get("alpha") and not cfg.get("delta") else distill
    return name + (f"+{cfg.get('method') or 'topkd'}" if cfg.get("delta") else "")


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_dict(path: Path) -> Dict[str, Any]:
    """A YAML file's mapping; {} when it is missing, unreadable or no mapping."""
    try:
        return _dict(read_yaml(path))
    except (OSError, TopKDError):
        return {}


def weights_sha(state: Any) -> Optional[str]:
    """SHA-256 over a state dict's names and tensor bytes (None when it is not a state dict)."""
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _read_ckpt(path: Path) -> Tuple[Dict[str, Any], str]:
    """-> (scalar entries of a checkpoint and ``weights``, "") or ({}, why it could not be read). An official
    ``*_last.pth`` pickles an ``argparse.Namespace``: the safe loader refuses it, and that is the reason."""
    if not path.is_file():
        return {}, f"no {path.name}"
    try:
        ckpt = load_checkpoint(str(path))
    except (TopKDError, OSError) as exc:
        if isinstance(exc, UnsafeCheckpointError):  # never unpickled; say so on stderr too
            print(f"note: skipped {path}: {' '.join(str(exc).split())}", file=sys.stderr)
        return {}, f"checkpoint unreadable: {str(exc).split(';')[0].replace(str(path), path.name)}"
    out = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    return dict(out, weights=weights_sha(ckpt.get("model"))), ""


def _float(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _top1(value: Any, what: str, missing: str) -> Tuple[Optional[float], str]:
    """(value, "") for a top-1 within [0, 100]; (None, why) otherwise (``missing`` when it is no number): a value
    outside is never used in a mean."""
    number = _float(value)
    if number is None:
        return None, missing
    if 0.0 <= number <= 100.0:
        return number, ""
    return None, f"n/a: {what} {number:g} is outside [0, 100]"


def _recorded_inputs(cfg: Dict[str, Any]) -> Dict[str, str]:
    """flag -> SHA-256 of the input files a run's provenance records."""
    return {k: v["sha256"] for k, v in _dict(_dict(cfg.get("provenance")).get("inputs")).items()
            if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def run_identity(cfg: Dict[str, Any]) -> Identity:
    """The identity a run records (config.yaml ``identity``); an official folder read from its name gets one by
    the same rule from the settings it has (its inputs by their recorded SHA-256, else the teacher's path)."""
    stored = cfg.get("identity")
    if isinstance(stored, dict) and isinstance(stored.get("options"), dict) \
            and isinstance(stored.get("inputs") or {}, dict):
        return Identity(stored.get("options") or {}, stored.get("inputs") or {})
    inputs: Dict[str, Any] = _recorded_inputs(cfg)
    if not inputs and cfg.get("path_t"):
        inputs["path_t"] = str(Path(str(cfg["path_t"])).resolve())
    unused = cfg.get("unused_options") if isinstance(cfg.get("unused_options"), list) else ()
    import train_student  # the stages' parsers declare which options change a result
    import train_teacher

    parser = (train_student if "model_s" in cfg else train_teacher).build_parser()
    return identity_of(parser, cfg, inputs, unused=[str(u) for u in unused])


def _date(provenance: Dict[str, Any], path: Path) -> Tuple[float, str]:
    """(seconds since the epoch, how it is known): the provenance's date, else the checkpoint's mtime."""
    text = provenance.get("date")
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp(), f"record date {text}"
    except (ValueError, OverflowError, OSError):
        mtime = path.stat().st_mtime
        return mtime, f"file mtime {datetime.datetime.fromtimestamp(mtime).astimezone().isoformat(timespec='seconds')}"


def topology_values(folder: Path, last_ckpt: Dict[str, Any]) -> Dict[str, float]:
    """The topology probe's latest values of a run: summary.yaml's ``probes.topo``, else the last checkpoint's
    (an interrupted run); ``{}`` when it has none."""
    values = _dict(read_dict(folder / "summary.yaml").get("probes")).get("topo")
    values = _dict(values if isinstance(values, dict) else (last_ckpt.get("probes") or {}).get("topo"))
    return {k: v for k, v in ((k, _float(v)) for k, v in values.items() if k != "epoch") if v is not None}


def read_run(folder: Path) -> Optional[Run]:
    """A Run from a folder holding ``<arch>_best.pth`` and a classifier's config.yaml (or an official run-folder
    name); None otherwise (e.g. a RipsNet folder)."""
    best_files = sorted(p for p in folder.glob("*_best.pth") if p.is_file())
    if not best_files:
        return None
    cfg = read_dict(folder / "config.yaml")
    arch_from_file = best_files[0].name[: -len("_best.pth")]
    best_path = folder / f"{cfg.get('model_s') or cfg.get('model') or arch_from_file}_best.pth"
    best_path = best_path if best_path.is_file() else best_files[0]
    best_ckpt, best_err = _read_ckpt(best_path)
    official = False
    cfg = cfg or _dict(best_ckpt.get("config"))
    if not (cfg.get("model_s") or cfg.get("model")):
        name = parse_run_name(folder.name)  # an official TopKD / RepDistiller layout, or ours
        if name is None:
            return None
        cfg, official = name.as_config(), True
        if name.is_student:
            cfg["path_t"] = None  # not known from the name
            if name.layout == "ours_student":  # our name keeps only the method tag
                cfg["distill"] = str(name.settings.get("rest", "")).split("_")[0] or "?"
    student = "model_s" in cfg and (cfg.get("path_t") is not None or (official and bool(cfg.get("model_t"))))
    arch = str(cfg.get("model_s") or cfg.get("model"))
    identity, provenance = run_identity(cfg), _dict(cfg.get("provenance"))
    seed, commit = identity.options.get("seed"), provenance.get("commit")
    if isinstance(commit, str) and commit:  # 8 digits, "-dirty" for a modified tree
        commit = commit[:8] + ("-dirty" if provenance.get("dirty") is True else "")
    trial = identity.options.get("trial", cfg.get("trial", 0))
    run = Run(path=folder, dataset=str(cfg.get("dataset", "?")), arch=ARCH_ALIASES.get(arch, arch),
              inputs=dict(identity.inputs), teacher_path=cfg.get("path_t"), best_file=best_path,
              options={k: v for k, v in identity.options.items() if k not in TRIAL_OPTIONS},
              seed=f"seed {seed}" if seed is not None else f"trial {trial}", checkpoint=input_sha256(str(best_path)),
              commit=commit if isinstance(commit, str) else "")
    run.date, run.date_source = _date(provenance, best_path)
    if student:
        sha = identity.inputs.get("path_t") or _recorded_inputs(cfg).get("path_t")
        teacher = str(cfg.get("model_t") or "?")
        run.teacher, run.method = ARCH_ALIASES.get(teacher, teacher), method_key(cfg)
        run.teacher_sha = sha if sha and re.fullmatch(r"[0-9a-f]{64}", str(sha)) else None
        run.teacher_top1 = _top1(provenance.get("teacher_top1"), "teacher_top1", "")[0]
    elif cfg.get("input") == "pi":
        run.dataset += "_pi"
    best = (None, f"n/a: {best_err}") if best_err else \
        _top1(best_ckpt.get("best_acc"), "best_acc", f"n/a: {best_path.name} holds no best_acc")
    if best[0] is None and not best_err:  # an evaluate.py result beside the checkpoint, for its current contents
        results = find_results(str(best_path))
        best = _top1(results[0].get("top1"), "evaluated top1", f"{best[1]}; its evaluate.py result holds no top1") \
            if results else (None, best[1] + "; run evaluate.py on it (or pass --evaluate)")
    # last top-1: our <arch>_last.pth; the official codes' last per-epoch checkpoint (their <arch>_last.pth
    # pickles the options object and holds no accuracy)
    epochs = [(int(m.group(1)), p) for p in folder.glob("ckpt_epoch_*.pth")
              if (m := re.fullmatch(r"ckpt_epoch_(\d+)\.pth", p.name))]
    last_path, key = (max(epochs)[1], "accuracy") if official and epochs else (folder / f"{arch_from_file}_last.pth",
                                                                              "last_acc")
    last_ckpt, last_err = _read_ckpt(last_path)
    last = (None, f"n/a: {last_err}") if last_err else \
        _top1(last_ckpt.get(key), key, f"n/a: {last_path.name} holds no {key}")
    curve = _dict(last_ckpt.get("per_epoch")).get("test_top1")
    run.test_top1 = [_float(v) for v in curve] if isinstance(curve, list) else []
    on_val = best_ckpt.get("selected_by") == "val"  # its best_acc is the test top-1 at the val-selected epoch
    if on_val:  # the test-selected best, as the other runs': the best of its epochs' test top-1
        best = _top1(max(run.test_top1), "the best epoch's test top-1", "") if run.test_top1 and \
            None not in run.test_top1 else (None, "n/a: selected on validation; no per-epoch test top-1 recorded")
    val_selected = _top1(best_ckpt.get("best_acc"), "best_acc", "n/a: no best_acc") if on_val else (None, "-")
    run.values = {"best": best, "last": last, "val_selected": val_selected,
                  **{k: (v, "") for k, v in topology_values(folder, last_ckpt).items()}}
    run.weights = last_ckpt.get("weights")
    return run


def evaluate_missing(runs: List[Run], data_root: Optional[str] = None) -> int:
    """``--evaluate``: evaluate.py's evaluation of the runs whose best top-1 is unknown (on each run's recorded
    data root unless ``data_root``; stored beside the checkpoint only in our own run folders) -> how many."""
    done = 0
    for run in runs:
        best, note = run.values["best"]
        if best is not None or run.best_file is None or \
                note.startswith(("n/a: checkpoint unreadable", "n/a: selected on validation")):
            continue
        pi = run.dataset.endswith("_pi")
        options = argparse.Namespace(checkpoint=str(run.best_file), model=run.arch, dataset=run.dataset[:-3] if pi
                                     else run.dataset, data_root=data_root, split="test", val_fraction=None,
                                     image_size=None, input="pi" if pi else None, pi_root=None, batch_size=None,
                                     num_workers=0, device="auto", path_t=None, model_t=None)
        try:
            result = evaluate_checkpoint(options)
        except (TopKDError, OSError) as exc:
            run.values["best"] = (None, f"n/a: evaluation failed: {' '.join(str(exc).split())}")
            continue
        out = default_out(result)
        if out:
            try:
                write_result(result, out)
            except (TopKDError, OSError):
                pass  # a read-only folder: the number is still used
        run.values["best"] = _top1(result["top1"], "evaluated top1", "n/a: evaluate.py gave no top1")
        done += 1
    return done


def find_runs(roots: Iterable[os.PathLike]) -> List[Run]:
    """Every run folder under ``roots`` (searched recursively), sorted by path."""
    runs = [read_run(Path(dirpath)) for root in roots for dirpath, _, files in os.walk(root)
            if any(f.endswith("_best.pth") for f in files)]
    return sorted((r for r in runs if r is not None), key=lambda r: str(r.path))


# ------------------------------------------------------------------------------------------------
# Grouping and the table
# ------------------------------------------------------------------------------------------------
@dataclass
class Stat:
    mean: Optional[float]
    std: Optional[float]
    n: int
    missing: int = 0               # members without a value
    note: str = ""                 # why (the first member's note)
    identical: bool = False        # every trial ended with the same weights (the std is 0 by construction)

    @classmethod
    def of(cls, values: Sequence[Tuple[Optional[float], str]], identical: bool = False) -> "Stat":
        vals = [v for v, _ in values if v is not None]
        note = next((n for v, n in values if v is None and n), "")
        if not vals:
            return cls(None, None, 0, len(values), note)
        std = statistics.stdev(vals) if len(vals) > 1 else None  # sample std (ddof 1)
        return cls(statistics.fmean(vals), std, len(vals), len(values) - len(vals), note, identical and len(vals) > 1)

    def text(self) -> str:
        if self.mean is None:
            return self.note
        if self.identical:
            out = f"{self.mean:.2f} (identical weights in all {self.n} trials)"
        else:
            out = f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")
        if self.missing and self.note:
            out += f" ({self.missing} of {self.n + self.missing} {self.note})"
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "missing": self.missing, "note": self.note,
                "identical_weights": self.identical}


@dataclass
class Row:
    """The runs of one identity (trial and seed left out), one per seed."""

    dataset: str
    teacher: str
    student: str
    method: str
    options: Dict[str, Any]
    inputs: Dict[str, Any]
    stats: Dict[str, Stat]
    trials: int
    teacher_acc: Stat
    teacher_sha: Optional[str] = None
    references: List[Reference] = field(default_factory=list)
    runs: List[str] = field(default_factory=list)
    commits: List[str] = field(default_factory=list)  # `Run.commit` of its runs ("not recorded" when unknown)
    copies: List[str] = field(default_factory=list)   # run folders left out as copies of a kept run
    repeats: List[str] = field(default_factory=list)  # run folders left out as older runs of a kept run's seed
    notes: List[str] = field(default_factory=list)    # why each was left out
    config: str = ""               # its options and inputs that differ between the rows
    members: List[Run] = field(default_factory=list)  # its runs, one per seed
    paired: Dict[str, Optional[Paired]] = field(default_factory=dict)  # column -> this row minus the baseline's
    paired_note: str = ""          # why it is not paired (empty when it is)

    @property
    def best(self) -> Stat:
        return self.stats["best"]

    @property
    def last(self) -> Stat:
        return self.stats["last"]

    def delta(self) -> Tuple[Optional[float], str]:
        """Our mean minus the first published number: last against last when both exist, else best against
        best -> (difference, label)."""
        for ref in self.references:
            for label in ("last", "best"):
                ours, theirs = getattr(self, label).mean, getattr(ref, label)
                if ours is not None and theirs is not None:
                    return ours - theirs, f"{label}, {ref.source}"
        return None, ""


def one_run_per_seed(members: List[Run]) -> Tuple[List[Run], List[Run], List[Run], List[str]]:
    """-> (kept, copies, repeats, a note per run left out): of runs sharing a seed the newest is kept; a copy of
    it (the same best checkpoint file) or another run of its seed is one run, not another trial."""
    by_seed: Dict[str, List[Run]] = {}
    for run in members:
        by_seed.setdefault(run.seed, []).append(run)
    kept, copies, repeats, notes = [], [], [], []
    for seed, same in by_seed.items():
        *older, newest = sorted(same, key=lambda r: (r.date, str(r.path)))
        kept.append(newest)
        for run in older:
            if run.checkpoint is not None and run.checkpoint == newest.checkpoint:
                copies.append(run)
                notes.append(f"{run.path} is a copy of {newest.path} (same checkpoint, sha256 "
                             f"{run.checkpoint[:8]}): counted once")
            else:
                repeats.append(run)
                notes.append(f"{seed} repeated: left out {run.path} (another checkpoint), kept {newest.path} "
                             f"(newest by {newest.date_source})")
    return kept, copies, repeats, notes


def teacher_top1(student: Run, runs: List[Run]) -> Tuple[Optional[float], str]:
    """The top-1 of a student's teacher: the teacher run whose best checkpoint has the SHA-256 the student
    recorded (else the top-1 it recorded), or the run at its ``--path_t``; never looked up by architecture."""
    teachers = [r for r in runs if not r.is_student]
    if student.teacher_sha:
        found = next((r for r in teachers if r.checkpoint == student.teacher_sha), None)
        if found is not None and found.values["best"][0] is not None:
            return found.values["best"]
        if student.teacher_top1 is not None:
            return student.teacher_top1, ""
        return None, f"n/a: teacher {student.teacher_sha[:8]} not among the runs and its checkpoint records no top-1"
    if student.teacher_path:
        folder = str(Path(student.teacher_path).resolve().parent)
        found = next((r for r in reversed(teachers) if str(r.path.resolve()) == folder), None)
        return found.values["best"] if found else (None, "n/a: its teacher checkpoint is not among the runs")
    return None, "n/a: the run does not record its teacher checkpoint"


def _key(options: Dict[str, Any], inputs: Dict[str, Any]) -> str:
    return json.dumps([options, inputs], sort_keys=True, default=str)


def last_k_mean(curve: Sequence[Optional[float]], k: int) -> Tuple[Optional[float], str]:
    """The mean of the last ``k`` per-epoch test top-1 values (of all of them when there are fewer)."""
    values = list(curve)[-k:]
    if not values or None in values:
        return None, "n/a: no per-epoch test top-1 recorded" if not values else "n/a: an epoch's top-1 is missing"
    return statistics.fmean(values), ""


def build_rows(runs: List[Run], last_k: int = 10) -> List[Row]:
    """One row per identity (`Run.options` and `Run.inputs`), one run per seed in it; ordered by dataset, student
    (its ce row first), teacher, method; each row's ``config`` is what differs between the rows."""
    groups: Dict[str, List[Run]] = {}
    for run in runs:
        run.values["last_k"] = last_k_mean(run.test_top1, last_k)
        groups.setdefault(_key(run.options, run.inputs), []).append(run)
    rows = []
    for group in groups.values():
        members, copies, repeats, notes = one_run_per_seed(group)
        first = members[0]
        weights = {m.weights for m in members}
        identical = len(members) > 1 and len(weights) == 1 and None not in weights
        stats = {k: Stat.of([m.values.get(k, (None, "")) for m in members], identical)
                 for k, _ in ACCURACY_COLUMNS + TOPO_COLUMNS}
        refs = DISTILL_REFERENCES.get((first.dataset, first.teacher, first.arch, first.method), []) \
            if first.is_student else CE_REFERENCES.get((first.dataset, first.arch), [])
        teacher = Stat.of([teacher_top1(first, runs)]) if first.is_student else Stat(None, None, 0)
        rows.append(Row(first.dataset, first.teacher, first.arch, first.method, first.options, first.inputs, stats,
                        len(members), teacher, first.teacher_sha, list(refs), [str(r.path) for r in members],
                        sorted({m.commit or "not recorded" for m in members}), [str(r.path) for r in copies],
                        [str(r.path) for r in repeats], notes, members=members))
    rows.sort(key=lambda r: (r.dataset, r.student, r.method != "ce", r.teacher, r.teacher_sha or "", r.method,
                             _key(r.options, r.inputs)))
    common = common_settings(rows)
    for row in rows:
        row.config = " ".join(f"{name} {v}" for (kind, name), v in sorted(_settings(row).items(), key=_by_name)
                              if (kind, name) not in common)
    return rows


def method_options() -> frozenset:
    """``--distill`` and every option (input flags included) a student method or the topology term declares:
    two rows whose runs differ only in these compare methods."""
    import train_student
    from distiller.options import collect

    return frozenset(collect(train_student.option_owners())) | {"distill"}


def _shared(row: Row, own: frozenset) -> Dict[str, Any]:
    """A row's options and inputs that are not the method's: what a baseline row must share with it."""
    return {**{k: v for k, v in row.options.items() if k not in own},
            **{k: v for k, v in row.inputs.items() if k not in own}}


def pair_rows(rows: Sequence[Row], baseline: str = "kd") -> None:
    """Pair every student row that is not of the ``baseline`` method with the one ``baseline`` student row whose
    runs differ from its own only in the method and its options (same teacher, data, split, student, epochs,
    world size, ...): per column, `paired_difference` of row minus baseline over the seeds both have. A row
    with no such baseline row (or several) gets no differences and a ``paired_note`` saying why."""
    own, bases = method_options(), [r for r in rows if r.teacher and r.method == baseline]
    for row in rows:
        if not row.teacher or row.method == baseline:
            continue
        shared = _shared(row, own)
        match = [b for b in bases if _shared(b, own) == shared]
        if len(match) > 1:
            row.paired_note = f"{len(match)} {baseline} rows share its settings (they differ in method options)"
        elif not match and not bases:
            row.paired_note = f"no {baseline} student row to pair with"
        elif not match:
            diffs = [sorted(k for k in set(shared) | set(o) if shared.get(k) != o.get(k))
                     for o in (_shared(b, own) for b in bases)]
            row.paired_note = f"no {baseline} row of its settings (the nearest differs in " \
                              f"{', '.join(min(diffs, key=len))})"
        if row.paired_note:
            continue
        mine, theirs = ({m.seed: m.values for m in r.members} for r in (row, match[0]))
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            row.paired_note = f"no seed in common with the {baseline} row"
        for key, _ in ACCURACY_COLUMNS + TOPO_COLUMNS:
            pairs = [(mine[s].get(key, (None, ""))[0], theirs[s].get(key, (None, ""))[0]) for s in seeds]
            pairs = [p for p in pairs if None not in p]
            row.paired[key] = paired_difference(*zip(*pairs)) if pairs else None


def _text(value: Any) -> str:
    """An option's value as the cell shows it: ``1.0`` -> ``1``, lists comma-joined, booleans lower case."""
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _settings(row: Row) -> Dict[Tuple[str, str], str]:
    """(``option``/``input``, name) -> text of a row's options and inputs (an input as 8 digits of its SHA-256),
    without those other columns show."""
    out = {("option", k): _text(v) for k, v in row.options.items() if v is not None}
    out.update({("input", k): str(v)[:8] for k, v in row.inputs.items() if v is not None})
    return {k: v for k, v in out.items() if k[1] not in SHOWN_ELSEWHERE}


def common_settings(rows: Sequence[Row]) -> Dict[Tuple[str, str], str]:
    """The options and inputs set to the same value in every row."""
    settings = [_settings(r) for r in rows]
    common = dict(settings[0]) if settings else {}
    for other in settings[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def _by_name(item: Tuple[Tuple[str, str], str]) -> Tuple[str, str]:
    return item[0][1], item[0][0]


def _num(v: Optional[float]) -> str:
    return "" if v is None else f"{v:.6g}"


def _title(title: str, last_k: int) -> str:
    return title.replace("last-k", f"last-{last_k}")


def _cells(row: Row, topo: Sequence[Tuple[str, str]],
           last_k: int = 10) -> List[Tuple[str, str, Dict[str, Any], bool]]:
    """The cells of a row: (title, Markdown text, CSV fields, numeric) in column order."""
    def stat(key: str, title: str, text: str) -> Tuple[str, str, Dict[str, Any], bool]:
        st = row.stats[key] if key in row.stats else row.teacher_acc
        return title, text, {f"{key}_mean": _num(st.mean), f"{key}_std": _num(st.std)}, True

    def topo_text(st: Stat) -> str:
        return "-" if st.mean is None else f"{st.mean:.4g}" + (f" ± {st.std:.2g}" if st.std is not None else "")

    delta, delta_of = row.delta()
    copies, repeats = len(row.copies), len(row.repeats)
    left = [f"{copies} {'copy' if copies == 1 else 'copies'} counted once"] * bool(copies) + \
        [f"{repeats} repeat{'s' if repeats > 1 else ''} left out"] * bool(repeats)
    published = "; ".join(x.text() for x in row.references)
    teacher = row.teacher + (f" ({row.teacher_sha[:8]})" if row.teacher_sha else "") if row.teacher else "-"
    return [
        ("dataset", row.dataset, {"dataset": row.dataset}, False),
        ("teacher", teacher, {"teacher": row.teacher, "teacher_sha256": row.teacher_sha or ""}, False),
        stat("teacher", "teacher top-1", row.teacher_acc.text()),
        ("student", row.student, {"student": row.student}, False),
        ("method", row.method, {"method": row.method}, False),
        ("config", row.config or "-", {"config": row.config}, False),
        *(stat(k, _title(title, last_k), row.stats[k].text() or "-") for k, title in ACCURACY_COLUMNS),
        *(stat(k, title, topo_text(row.stats[k])) for k, title in topo),
        ("trials", str(row.trials) + (f" ({', '.join(left)})" if left else ""), {"trials": row.trials}, True),
        ("commit", ", ".join(row.commits), {"commit": ", ".join(row.commits)}, False),
        ("Δ vs published", "" if delta is None else f"{delta:+.2f} ({delta_of})",
         {"delta": _num(delta), "delta_of": delta_of}, True),
        ("published", published, {"reference": published}, False),
    ]


def _topo_shown(rows: Sequence[Row]) -> List[Tuple[str, str]]:
    return [(k, t) for k, t in TOPO_COLUMNS if any(r.stats[k].mean is not None for r in rows)]


def _paired_columns(rows: Sequence[Row]) -> List[Tuple[str, str]]:
    """The compared columns: the accuracies (val-selected when some run has it) and the topology shown."""
    return [(k, t) for k, t in ACCURACY_COLUMNS if k != "val_selected" or any(r.stats[k].mean is not None
                                                                              for r in rows)] + _topo_shown(rows)


def paired_markdown(rows: Sequence[Row], baseline: str, last_k: int = 10) -> List[str]:
    """The paired comparison table (one line per compared row) and one note per row left unpaired."""
    compared = [r for r in rows if r.teacher and r.method != baseline]
    if not compared:
        return []
    columns = _paired_columns(rows)
    lines = ["", f"Paired by seed against {baseline} (row minus {baseline}, over the seeds both rows have: mean "
                 f"[95% t interval], paired t-test p; only rows whose runs differ in the method alone are paired):",
             "", "| dataset | teacher | student | method | config | pairs | " +
             " | ".join(_title(t, last_k) for _, t in columns) + " |",
             "| --- | --- | --- | --- | --- | ---: |" + " ---: |" * len(columns)]
    notes = []
    for row in compared:
        cells = [(row.paired.get(k).text(2 if k in dict(ACCURACY_COLUMNS) else 4) if row.paired.get(k) else "-")
                 for k, _ in columns]
        pairs = max((p.n for p in row.paired.values() if p), default=0)
        lines.append(f"| {row.dataset} | {row.teacher or '-'} | {row.student} | {row.method} | {row.config or '-'} "
                     f"| {pairs} | " + " | ".join(cells) + " |")
        if row.paired_note:
            notes.append(f"- '-' for {row.method} ({row.student} from {row.teacher}"
                         f"{', ' + row.config if row.config else ''}): {row.paired_note}.")
    return lines + ([""] + notes if notes else [])


def to_markdown(rows: List[Row], baseline: str = "kd", last_k: int = 10) -> str:
    """Markdown table (mean ± sample std over trials, percent), the settings equal in every row said below it,
    then the paired comparison against ``baseline``."""
    table = [_cells(r, _topo_shown(rows), last_k) for r in rows]
    lines = ["| " + " | ".join(c[0] for c in table[0]) + " |",
             "| " + " | ".join("---:" if c[3] else "---" for c in table[0]) + " |"]
    lines += ["| " + " | ".join(c[1].replace("|", "/") for c in cells) + " |" for cells in table]
    common = common_settings(rows)
    if common:
        lines += ["", "Equal in every row (not repeated in the config column): " +
                  ", ".join(f"{key[1]} {v}" for key, v in sorted(common.items(), key=_by_name)) + "."]
    short = sum(0 < len(m.test_top1) < last_k for r in rows for m in r.members)
    lines += ["", f"last-{last_k} mean: each run's mean test top-1 over its last {last_k} epochs" +
              (f"; {short} run(s) of fewer than {last_k} epochs: the mean over all their epochs." if short else ".")]
    return "\n".join(lines + paired_markdown(rows, baseline, last_k)) + "\n"


def to_csv(rows: List[Row], baseline: str = "kd") -> str:
    """CSV with mean / std columns (empty when unknown), the paired difference from ``baseline`` (``vs_<baseline>_
    <column>_{mean,low,high,p,n}``, empty when unpaired), the run folders joined by ';' and the notes."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for i, row in enumerate(rows):
        fields = {k: v for cell in _cells(row, _topo_shown(rows)) for k, v in cell[2].items()}
        for key, _ in ACCURACY_COLUMNS + TOPO_COLUMNS:
            found = row.paired.get(key)
            fields.update({f"vs_{baseline}_{key}_{part}": "" if getattr(found, part, None) is None
                           else str(getattr(found, part)) for part in ("mean", "low", "high", "p", "n")})
        fields[f"vs_{baseline}_note"] = row.paired_note
        notes = "; ".join([f"{k}: {st.note}" for k, st in row.stats.items() if st.note] + row.notes)
        fields.update(identical_weights=str(row.best.identical).lower(), runs=";".join(row.runs), notes=notes)
        if i == 0:
            writer.writerow(list(fields))
        writer.writerow(list(fields.values()))
    return buf.getvalue()


def to_json(rows: List[Row], baseline: str = "kd") -> str:
    """Every row with its statistics, paired differences from ``baseline``, teacher, references and run folders."""
    out = []
    for r in rows:
        delta, delta_of = r.delta()
        out.append({"dataset": r.dataset, "teacher": r.teacher or None, "teacher_sha256": r.teacher_sha,
                    "teacher_top1": r.teacher_acc.to_dict(), "student": r.student, "method": r.method,
                    "config": r.config, "options": r.options, "inputs": r.inputs, "trials": r.trials,
                    "stats": {k: v.to_dict() for k, v in r.stats.items()},
                    "delta_vs_published": delta, "delta_of": delta_of or None,
                    "references": [{"best": x.best, "last": x.last, "source": x.source} for x in r.references],
                    "runs": r.runs, "commits": r.commits, "left_out": r.copies + r.repeats, "copies": r.copies,
                    "repeats": r.repeats, "notes": r.notes,
                    "paired": {"baseline": baseline, "note": r.paired_note,
                               **{k: r.paired[k].to_dict() if r.paired.get(k) else None
                                  for k, _ in ACCURACY_COLUMNS + TOPO_COLUMNS}}})
    return json.dumps(out, indent=1, ensure_ascii=False) + "\n"


def collect(roots: Sequence[os.PathLike], out: os.PathLike, evaluate: bool = False,
            data_root: Optional[str] = None, last_k: int = 10, baseline: str = "kd") -> Tuple[Path, Path, List[Row]]:
    """Find runs under ``roots``; write ``<out>.md``, ``<out>.csv`` and ``<out>.json`` -> (md path, csv path, rows)."""
    existing = [Path(r) for r in roots if Path(r).is_dir()]
    if not existing:
        raise FileNotFoundError(f"none of the run roots exists ({', '.join(map(str, roots))}); pass folders "
                                f"holding run folders, e.g. save_t_models save_s_models")
    runs = find_runs(existing)
    if not runs:
        raise FileNotFoundError(f"no run folder (with <arch>_best.pth) under {', '.join(map(str, existing))}; "
                                f"train a teacher or student first")
    if evaluate:
        evaluate_missing(runs, data_root)
    rows = build_rows(runs, last_k)
    pair_rows(rows, baseline)
    for note in (n for row in rows for n in row.notes):
        print(f"note: {note}", file=sys.stderr)
    out = Path(out)
    out = out.with_suffix("") if out.suffix in (".md", ".csv", ".json") else out
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".md", to_markdown(rows, baseline, last_k)), (".csv", to_csv(rows, baseline)),
                         (".json", to_json(rows, baseline))):
        write_text(out.with_suffix(suffix), text)
    return out.with_suffix(".md"), out.with_suffix(".csv"), rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Collect run folders into a Markdown + CSV + JSON results table.")
    p.add_argument("roots", nargs="*", default=["save_t_models", "save_s_models"],
                   help="folders searched (recursively) for run folders")
    p.add_argument("--out", default="results", help="output path without extension (writes .md, .csv and .json)")
    p.add_argument("--evaluate", action="store_true",
                   help="evaluate (evaluate.py) the best checkpoints that record no accuracy, on --data_root")
    p.add_argument("--data_root", default=None,
                   help="with --evaluate: where the data sets are (default: each run's recorded root, else ./data)")
    p.add_argument("--last_k", type=int, default=10,
                   help="the 'last-k mean' column: each run's mean test top-1 over its last k epochs (all of them "
                        "when it has fewer; the table says so)")
    p.add_argument("--baseline", default="kd", choices=("kd", "ce"),
                   help="the method every other student row is compared with, seed by seed: kd = the rows the "
                        "method column calls kd (--distill kd, -a > 0, no topology term); ce = the CE-only "
                        "students (--distill kd -a 0; teachers trained alone are never compared). A row is "
                        "paired only with the baseline row whose runs differ from its own in --distill and the "
                        "method's options alone (same teacher, data, split, student, epochs, ...)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = build_parser().parse_args(argv)
    for suffix in (".md", ".csv", ".json"):
        check_output_file(str(args.out) + suffix, "--out")
    for root in args.roots:
        if not Path(root).is_dir():
            print(f"note: {root} not found, skipped", file=sys.stderr)
    if args.last_k < 1:
        raise TopKDError(f"--last_k must be a positive integer (epochs averaged), got {args.last_k}")
    md, csv_path, rows = collect(args.roots, args.out, evaluate=args.evaluate, data_root=args.data_root,
                                 last_k=args.last_k, baseline=args.baseline)
    print(md.read_text(), end="")
    print(f"{len(rows)} rows -> {md}, {csv_path}, {md.with_suffix('.json')}")
    return md


if __name__ == "__main__":
    run_cli(main)
