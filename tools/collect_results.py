"""Collect finished runs into one results table (Markdown, CSV and JSON).

    python tools/collect_results.py [ROOT ...] [--out results]      # default roots: save_t_models save_s_models
    python tools/collect_results.py ROOT --evaluate --data_root ./data   # evaluate.py for runs without accuracies

A run folder is any folder under a root holding ``<arch>_best.pth`` (and usually ``<arch>_last.pth``,
``config.yaml``); official TopKD and RepDistiller run folders, which have no config.yaml, are read from
their names (``models.run_names``) and their last accuracy from their last ``ckpt_epoch_<N>.pth``. Every
checkpoint is read with the safe loader; a cell that cannot be filled says why (``n/a: ...``); a run whose
checkpoint records no accuracy takes it from an ``evaluate.py`` result of that checkpoint beside it (or,
with ``--evaluate``, runs the evaluation).

Rows: one per identity, the run's own record of every option and input file that changes its result
(config.yaml ``identity``, `engine.record`), with only the trial and seed left out; runs without one (older
runs, official folders) get one by the same rule from the settings they have. Runs of other options, method
options included, or other input files (teacher, RipsNet, data) are never pooled. In a row, one run per seed:
of runs sharing a seed (a copy of a run folder, or a trial trained twice) the newest by its record date (else
its checkpoint's file mtime) is kept, and each left out is named on stderr, in the trials cell and in the JSON.
The config column shows the options and inputs that are not the same in every row; those that are follow the
Markdown table once. The teacher is the checkpoint each student was trained from (its SHA-256); its top-1 is
that teacher run's, else the one the student recorded from the teacher's checkpoint; never an average over
teachers of the same architecture. Each row gets mean +- std over its trials of every numeric column
(`STAT_COLUMNS`: best and last test top-1; add a `StatColumn` for more; an accuracy outside [0, 100] is
refused, its cell says why), the number of trials, the code's commits (``-dirty``: a modified tree),
published numbers with their epoch label (best / last) and the difference of ours from the published one
(``Δ``). Networks trained alone with cross-entropy (teachers, and the ``ce`` baseline of a student) are rows
of method ``ce`` with no teacher; they sit before the distilled rows of the same student. When all trials of
a row end with identical weights, the row says so instead of printing a zero std.
"""
from __future__ import annotations

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
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from distiller.registry import canonical_name
from engine.evaluate import default_out, evaluate_checkpoint, find_results, write_result
from engine.record import Identity, identity_of, input_sha256
from models import ARCH_ALIASES
from models.run_names import parse_run_name
from topkd_io import (
    UnsafeCheckpointError,
    check_output_file,
    load_checkpoint,
    read_yaml,
    write_text,
)


# ------------------------------------------------------------------------------------------------
# Published numbers (CIFAR-100 test top-1, %). Nothing here is computed by this project.
# ------------------------------------------------------------------------------------------------
TOPKD_LOGS = "TopKD log"
# Source: the official TopKD release (github.com/jekim5418/TopKD), its training logs in
# save_s_tda_ripsnet_t_logs_final/ (best and last epoch of the logged trial; teacher as printed there: the
# accuracy of the teacher's best checkpoint).
REPDISTILLER = "RepDistiller"
# Source: HobbitLong/RepDistiller README.md, "Benchmark Results on CIFAR-100" (the "Teacher <br> Student"
# and "KD" rows). These are last-epoch numbers: its train_student.py (lines 333-334 at b84f547) and
# train_teacher.py (lines 161-162) say "The results reported in the paper/README is from the last epoch".


@dataclass(frozen=True)
class Reference:
    """One published number: best and/or last top-1 in percent (whichever the source publishes), and its source."""

    best: Optional[float]
    last: Optional[float]
    source: str

    def text(self) -> str:
        parts = [f"{v:.2f} {label}" for v, label in ((self.best, "best"), (self.last, "last")) if v is not None]
        return f"{' / '.join(parts)} ({self.source})"


# (dataset, architecture) -> references for a network trained alone with cross-entropy.
CE_REFERENCES: Dict[Tuple[str, str], List[Reference]] = {}
# (dataset, teacher, student, method) -> references for a distilled student.
DISTILL_REFERENCES: Dict[Tuple[str, str, str, str], List[Reference]] = {}


def _add_ce(dataset: str, arch: str, source: str, best: Optional[float] = None, last: Optional[float] = None) -> None:
    CE_REFERENCES.setdefault((dataset, arch), []).append(Reference(best, last, source))


def _add_distill(dataset: str, teacher: str, student: str, method: str, source: str, best: Optional[float] = None,
                 last: Optional[float] = None) -> None:
    DISTILL_REFERENCES.setdefault((dataset, teacher, student, method), []).append(Reference(best, last, source))


# TopKD official logs: teacher accuracy (its best checkpoint) and the TopKD (KD + topology term) student.
_add_ce("cifar100", "resnet56", TOPKD_LOGS, best=73.50)
_add_ce("cifar100", "wrn_40_2", TOPKD_LOGS, best=76.64)
_add_distill("cifar100", "resnet56", "resnet20", "kd+topkd", TOPKD_LOGS, best=71.74, last=71.66)
_add_distill("cifar100", "wrn_40_2", "shufflev1", "kd+topkd", TOPKD_LOGS, best=76.40, last=76.06)

# RepDistiller README: networks trained alone (its teacher and student rows), with our model names.
for _arch, _acc in {"wrn_40_2": 75.61, "resnet56": 72.34, "resnet110": 74.31, "resnet32x4": 79.42,
                    "vgg13": 74.64, "ResNet50": 79.34, "wrn_16_2": 73.26, "wrn_40_1": 71.98,
                    "resnet20": 69.06, "resnet32": 71.14, "resnet8x4": 72.50, "vgg8": 70.36,
                    "mobilenetv2": 64.60, "shufflev1": 70.50, "shufflev2": 71.82}.items():
    _add_ce("cifar100", _arch, REPDISTILLER, last=_acc)
# RepDistiller README: the rows of the methods this repository implements, (teacher, student) -> top-1
# per method, the pairs in the README's column order.
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
}
for _method, _row in _REPDISTILLER_ROWS.items():
    for (_t, _s), _acc in zip(_REPDISTILLER_PAIRS, _row):
        _add_distill("cifar100", _t, _s, _method, REPDISTILLER, last=_acc)


# ------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One finished (or interrupted) training run."""

    path: Path
    dataset: str
    arch: str                      # the trained network
    teacher: str = ""              # the teacher's architecture; empty for CE-only runs
    method: str = "ce"
    options: Dict[str, Any] = field(default_factory=dict)  # its identity's options, trial and seed left out
    inputs: Dict[str, Any] = field(default_factory=dict)   # its identity's inputs: flag -> SHA-256
    seed: str = "seed 0"           # ``seed <n>`` (or ``trial <n>`` where no seed is recorded): one run per value
    best: Optional[float] = None
    last: Optional[float] = None
    teacher_path: Optional[str] = None
    teacher_sha: Optional[str] = None     # SHA-256 of the teacher checkpoint the run was trained from
    teacher_top1: Optional[float] = None  # the teacher's test top-1 as its checkpoint recorded it
    best_note: str = ""            # why ``best`` is None (shown in the table instead of a blank cell)
    last_note: str = ""
    weights: Optional[str] = None  # SHA-256 of the final weights (the last checkpoint's model)
    best_file: Optional[Path] = None
    checkpoint: Optional[str] = None  # SHA-256 of the best checkpoint file (equal for copies of one run)
    date: float = 0.0              # when the run was made (seconds since the epoch), from ``date_source``
    date_source: str = ""          # ``record date <ISO>`` (its provenance) or ``file mtime <ISO>`` (the checkpoint's)
    commit: str = ""               # the code's commit (8 digits, ``-dirty`` for a modified tree); "" unknown
    extra: Dict[str, Optional[float]] = field(default_factory=dict)  # more numeric columns (RUN_READERS)
    extra_notes: Dict[str, str] = field(default_factory=dict)

    @property
    def is_student(self) -> bool:
        return bool(self.teacher)


def _num(value: Any) -> str:
    """Compact number text: 1.0 -> '1', 0.0005 -> '0.0005'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def method_key(cfg: Dict[str, Any]) -> str:
    """Method name of a student config: ``kd``, ``kd+topkd``, ``ce`` (KD with alpha 0), ``crd`` ...

    Any spelling train_student.py accepts (aliases, any case) maps to the method's registered name.
    """
    distill = canonical_name(str(cfg.get("distill", "kd")))
    name = "ce" if distill == "kd" and not cfg.get("alpha") and not cfg.get("delta") else distill
    if cfg.get("delta"):
        name += "+" + str(cfg.get("method") or "topkd")
    return name


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        data = read_yaml(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
    """-> (scalar entries of a checkpoint plus ``weights``: the SHA-256 of its model, "") or ({}, why it could
    not be read). Read with the safe loader: an official ``*_last.pth`` pickles an ``argparse.Namespace`` and
    is refused, with that as the reason."""
    if not path.is_file():
        return {}, f"no {path.name}"
    try:
        ckpt = load_checkpoint(str(path))
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, UnsafeCheckpointError):  # never unpickled; say so on stderr too
            print(f"note: skipped {path}: {' '.join(str(exc).split())}", file=sys.stderr)
        reason = str(exc).split(";")[0].replace(str(path), path.name)
        return {}, f"checkpoint unreadable: {reason}"
    out = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    out["weights"] = weights_sha(ckpt.get("model"))
    return out, ""


def _last_epoch_ckpt(folder: Path) -> Optional[Path]:
    """The official codes' last per-epoch checkpoint ``ckpt_epoch_<N>.pth`` (largest N), if any."""
    found = []
    for p in folder.glob("ckpt_epoch_*.pth"):
        m = re.fullmatch(r"ckpt_epoch_(\d+)\.pth", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def _accuracy(ckpt: Dict[str, Any], key: str, note: str, path: Path) -> Tuple[Optional[float], str]:
    """``ckpt[key]`` as a float (a top-1 in percent), or None and why (``n/a: ...``)."""
    if note:
        return None, f"n/a: {note}"
    value = _float(ckpt.get(key))
    if value is None:
        return None, f"n/a: {path.name} holds no {key}"
    return _percent(value, key)


def _percent(value: float, what: str) -> Tuple[Optional[float], str]:
    """(value, "") for a top-1 within [0, 100]; (None, why) otherwise: it is never used in a mean."""
    if 0.0 <= value <= 100.0:
        return value, ""
    return None, f"n/a: {what} {value:g} is outside [0, 100]"


def _float(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _from_folder_name(path: Path) -> Optional[Dict[str, Any]]:
    """Settings of a run without config.yaml from its folder name (official TopKD / RepDistiller layouts, ours),
    as config.yaml keys; None when the name follows no layout (e.g. a RipsNet folder)."""
    run = parse_run_name(path.name)
    if run is None:
        return None
    cfg = run.as_config()
    if run.is_student:
        cfg["path_t"] = None  # not known from the name
        if run.layout == "ours_student":  # our name keeps only the method tag
            cfg["distill"] = str(run.settings.get("rest", "")).split("_")[0] or "?"
    return cfg


def _canonical_arch(name: str) -> str:
    return ARCH_ALIASES.get(name, name)


def _provenance(cfg: Dict[str, Any]) -> Dict[str, Any]:
    return cfg.get("provenance") if isinstance(cfg.get("provenance"), dict) else {}


def _recorded_inputs(cfg: Dict[str, Any]) -> Dict[str, str]:
    """flag -> SHA-256 of the input files a run's provenance records."""
    inputs = _provenance(cfg).get("inputs")
    inputs = inputs if isinstance(inputs, dict) else {}
    return {k: v["sha256"] for k, v in inputs.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def _teacher_top1(cfg: Dict[str, Any]) -> Optional[float]:
    """The teacher's top-1 a student's provenance records (None when absent or outside [0, 100])."""
    value = _float(_provenance(cfg).get("teacher_top1"))
    return None if value is None else _percent(value, "teacher_top1")[0]


def run_identity(cfg: Dict[str, Any]) -> Identity:
    """The identity a run records (config.yaml ``identity``, `engine.record`). A run that records none (an
    older run, or an official folder read from its name) gets one by the same rule from the settings it
    has: the options its stage declares result options, its inputs by their recorded SHA-256 (else the
    teacher's path)."""
    stored = cfg.get("identity")
    if isinstance(stored, dict) and isinstance(stored.get("options"), dict) \
            and isinstance(stored.get("inputs") or {}, dict):
        return Identity.from_dict(stored)
    inputs: Dict[str, Any] = _recorded_inputs(cfg)
    if not inputs and cfg.get("path_t"):
        inputs["path_t"] = str(Path(str(cfg["path_t"])).resolve())
    unused = cfg.get("unused_options") if isinstance(cfg.get("unused_options"), list) else ()
    import train_student  # the stages' parsers declare which options change a result
    import train_teacher

    parser = (train_student if "model_s" in cfg else train_teacher).build_parser()
    return identity_of(parser, cfg, inputs, unused=[str(u) for u in unused])


# Left out of a row's grouping: the trials of one setting differ only in these.
TRIAL_OPTIONS = ("trial", "seed")


def _date(cfg: Dict[str, Any], path: Path) -> Tuple[float, str]:
    """(seconds since the epoch, ``record date <ISO>``) from the run's provenance, else the checkpoint file's
    ``file mtime <ISO>``."""
    text = _provenance(cfg).get("date")
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp(), f"record date {text}"
    except (ValueError, OverflowError, OSError):
        mtime = path.stat().st_mtime
        return mtime, f"file mtime {datetime.datetime.fromtimestamp(mtime).astimezone().isoformat(timespec='seconds')}"


def _commit(cfg: Dict[str, Any]) -> str:
    """``<8 hex>`` of the commit the run's provenance records, ``-dirty`` when the tree was modified; ""."""
    prov = _provenance(cfg)
    commit = prov.get("commit")
    if not isinstance(commit, str) or not commit:
        return ""
    return commit[:8] + ("-dirty" if prov.get("dirty") is True else "")


# Functions ``reader(run, folder, cfg, last_ckpt)`` that add numeric values to ``run.extra`` (and notes to
# ``run.extra_notes``) for extra StatColumns; e.g. topology metrics read from a run's summary or checkpoint.
RUN_READERS: List[Callable[[Run, Path, Dict[str, Any], Dict[str, Any]], None]] = []


def read_run(folder: Path) -> Optional[Run]:
    """A Run from a folder holding ``<arch>_best.pth`` and a classifier's config.yaml (or an official run
    folder name); None otherwise (not a training run, e.g. a RipsNet folder). Accuracies it cannot read
    carry a note saying why; a checkpoint without one takes it from an evaluate.py result beside it."""
    best_files = sorted(p for p in folder.glob("*_best.pth") if p.is_file())
    if not best_files:
        return None
    cfg = _read_yaml(folder / "config.yaml")
    arch_from_file = best_files[0].name[: -len("_best.pth")]
    arch = cfg.get("model_s") or cfg.get("model") or arch_from_file
    best_path = folder / f"{arch}_best.pth"
    if not best_path.is_file():
        best_path = best_files[0]
    (best_ckpt, best_err) = _read_ckpt(best_path)
    official = False
    if not cfg:
        cfg = best_ckpt.get("config") if isinstance(best_ckpt.get("config"), dict) else {}
    if not (cfg and (cfg.get("model_s") or cfg.get("model"))):
        cfg = _from_folder_name(folder)
        if cfg is None:
            return None
        official = True
    student = "model_s" in cfg and (cfg.get("path_t") is not None or (official and bool(cfg.get("model_t"))))
    arch = _canonical_arch(str(cfg.get("model_s") or cfg.get("model") or arch))
    identity = run_identity(cfg)
    seed = identity.options.get("seed")
    info: Dict[str, Any] = {
        "dataset": str(cfg.get("dataset", "?")), "arch": arch, "inputs": dict(identity.inputs),
        "options": {k: v for k, v in identity.options.items() if k not in TRIAL_OPTIONS},
        "seed": f"seed {seed}" if seed is not None else f"trial {identity.options.get('trial', cfg.get('trial', 0))}"}
    if student:
        sha = identity.inputs.get("path_t") or _recorded_inputs(cfg).get("path_t")
        info.update(teacher=_canonical_arch(str(cfg.get("model_t") or "?")), method=method_key(cfg),
                    teacher_sha=sha if sha and re.fullmatch(r"[0-9a-f]{64}", str(sha)) else None,
                    teacher_top1=_teacher_top1(cfg))
    else:
        info["dataset"] = str(cfg.get("dataset", "?")) + ("_pi" if cfg.get("input") == "pi" else "")
    best, best_note = _accuracy(best_ckpt, "best_acc", best_err, best_path)
    if best is None and not best_err:
        best, best_note = _evaluated(best_path, best_note)
    # last top-1: our <arch>_last.pth ('last_acc'); the official codes' last per-epoch checkpoint ('accuracy')
    # (their <arch>_last.pth pickles the options object and holds no accuracy)
    last_path = folder / f"{arch_from_file}_last.pth"
    epoch_ckpt = _last_epoch_ckpt(folder)
    if official and epoch_ckpt is not None:
        last_ckpt, last_err = _read_ckpt(epoch_ckpt)
        last, last_note = _accuracy(last_ckpt, "accuracy", last_err, epoch_ckpt)
    else:
        last_ckpt, last_err = _read_ckpt(last_path)
        last, last_note = _accuracy(last_ckpt, "last_acc", last_err, last_path)
    date, date_source = _date(cfg, best_path)
    run = Run(path=folder, best=best, last=last, teacher_path=cfg.get("path_t"), best_note=best_note,
              last_note=last_note, weights=last_ckpt.get("weights"), best_file=best_path,
              checkpoint=input_sha256(str(best_path)), date=date, date_source=date_source, commit=_commit(cfg),
              **info)
    for reader in RUN_READERS:
        reader(run, folder, cfg, last_ckpt)
    return run


def _evaluated(checkpoint: Path, note: str) -> Tuple[Optional[float], str]:
    """The test top-1 an evaluate.py result beside ``checkpoint`` records for its current contents."""
    results = find_results(str(checkpoint))
    if results:
        value = _float(results[0].get("top1"))
        if value is None:
            return None, f"{note}; its evaluate.py result holds no top1"
        return _percent(value, "evaluated top1")
    return None, note + "; run evaluate.py on it (or pass --evaluate)"


def evaluate_missing(runs: List[Run], data_root: Optional[str] = None) -> int:
    """``--evaluate``: run evaluate.py's evaluation for the runs whose best top-1 is unknown -> how many.
    ``data_root`` None: each run's recorded one (else ./data). The result is stored beside the checkpoint only
    in our own run folders (`engine.evaluate.default_out`), as evaluate.py does."""
    done = 0
    for run in runs:
        if run.best is not None or run.best_file is None or run.best_note.startswith("n/a: checkpoint unreadable"):
            continue
        dataset = run.dataset[:-3] if run.dataset.endswith("_pi") else run.dataset
        options = argparse.Namespace(checkpoint=str(run.best_file), model=run.arch, dataset=dataset,
                                     data_root=data_root, split="test", val_split=None, seed=None, image_size=None,
                                     input="pi" if run.dataset.endswith("_pi") else None, pi_root=None,
                                     batch_size=None, num_workers=0, device="auto", path_t=None, model_t=None)
        try:
            result = evaluate_checkpoint(options)
        except (ValueError, OSError) as exc:
            run.best_note = f"n/a: evaluation failed: {' '.join(str(exc).split())}"
            continue
        out = default_out(result)
        if out:
            try:
                write_result(result, out)
            except (ValueError, OSError):
                pass  # a read-only folder: the number is still used
        run.best, run.best_note = _percent(float(result["top1"]), "evaluated top1")
        done += 1
    return done


def find_runs(roots: Iterable[os.PathLike]) -> List[Run]:
    """Every run folder under ``roots`` (searched recursively), sorted by path."""
    runs = []
    for root in roots:
        for dirpath, _, files in os.walk(root):
            if any(f.endswith("_best.pth") for f in files):
                run = read_run(Path(dirpath))
                if run is not None:
                    runs.append(run)
    return sorted(runs, key=lambda r: str(r.path))


# ------------------------------------------------------------------------------------------------
# Topology columns: the student-time topology probe's values, mean ± std over trials.
# Self-contained: `topology_values` reads one run, `TOPO_COLUMNS` names the columns shown.
# ------------------------------------------------------------------------------------------------
TOPO_PROBE = "topo"  # the probe's name in summary.yaml / the checkpoints (engine.topo_eval)
# (key written by the probe, column title); the CSV gets <key>_mean / <key>_std for each
TOPO_COLUMNS = (("bottleneck_h0_norm_diam", "bottleneck H0 (/diam)"),
                ("wasserstein1_h0_norm_diam", "W1 H0 (/diam)"),
                ("pi_mse_h0", "PI MSE H0"),
                ("cka_linear", "linear CKA"))


def topology_values(folder: Path, last_ckpt: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    """The topology probe's latest values of a run: ``summary.yaml``'s ``probes.topo``, else the last
    checkpoint's ``ckpt["probes"]["topo"]`` (an interrupted run); ``{}`` when the run has none."""
    summary = _read_yaml(folder / "summary.yaml")
    values = (summary.get("probes") or {}).get(TOPO_PROBE) if isinstance(summary.get("probes"), dict) else None
    if not isinstance(values, dict) and last_ckpt:
        values = (last_ckpt.get("probes") or {}).get(TOPO_PROBE)
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in ((k, _float(v)) for k, v in values.items() if k != "epoch") if v is not None}


def _topology_reader(run: "Run", folder: Path, cfg: Dict[str, Any], last_ckpt: Dict[str, Any]) -> None:
    """RUN_READERS entry: the topology probe's values into ``run.extra`` (shown by the TOPO_COLUMNS)."""
    run.extra.update(topology_values(folder, last_ckpt))


RUN_READERS.append(_topology_reader)


def _topo_text(st: "Stat") -> str:
    if st is None or st.mean is None:
        return "-"
    return f"{st.mean:.4g}" + (f" ± {st.std:.2g}" if st.std is not None else "")


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
    def of(cls, values: Iterable[Optional[float]], notes: Iterable[str] = (), identical: bool = False) -> "Stat":
        values = list(values)
        notes = [n for v, n in zip(values, list(notes) or [""] * len(values)) if v is None and n]
        vals = [v for v in values if v is not None]
        missing, note = len(values) - len(vals), (notes[0] if notes else "")
        if not vals:
            return cls(None, None, 0, missing, note)
        std = statistics.stdev(vals) if len(vals) > 1 else None  # sample std (ddof 1)
        return cls(statistics.fmean(vals), std, len(vals), missing, note, identical and len(vals) > 1)

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


@dataclass(frozen=True)
class StatColumn:
    """A numeric column: ``value(run) -> (number or None, why not)``, shown as mean ± std over a row's trials
    (``text(stat)``: the cell; default `Stat.text`). An ``optional`` column is shown only when some row has a
    value in it."""

    key: str
    title: str
    value: Callable[[Run], Tuple[Optional[float], str]]
    optional: bool = False
    text: Optional[Callable[[Stat], str]] = None


# The numeric columns of every row, in order; append a StatColumn to add one (e.g. a topology metric read
# into ``Run.extra`` by a RUN_READERS function: StatColumn("bottleneck", "bottleneck H0",
# lambda r: (r.extra.get("bottleneck"), r.extra_notes.get("bottleneck", "")))).
STAT_COLUMNS: List[StatColumn] = [
    StatColumn("best", "best top-1", lambda r: (r.best, r.best_note)),
    StatColumn("last", "last top-1", lambda r: (r.last, r.last_note)),
    # the topology probe's values, when any run has them
    *(StatColumn(key, title, (lambda r, k=key: (r.extra.get(k), "")), optional=True, text=_topo_text)
      for key, title in TOPO_COLUMNS),
]


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
    config: str = ""               # its options and inputs that differ between the rows (`fill_config`)

    @property
    def best(self) -> Stat:
        return self.stats["best"]

    @property
    def last(self) -> Stat:
        return self.stats["last"]

    def delta(self) -> Tuple[Optional[float], str]:
        """Our mean minus the first published number: last epoch against last when both exist, else best
        against best -> (difference, label)."""
        for ref in self.references:
            for label in ("last", "best"):
                ours, theirs = getattr(self, label).mean, getattr(ref, label)
                if ours is not None and theirs is not None:
                    return ours - theirs, f"{label}, {ref.source}"
        return None, ""


def one_run_per_seed(members: List[Run]) -> Tuple[List[Run], List[Run], List[Run], List[str]]:
    """The runs of one row, one per seed -> (kept, copies, repeats, a note per run left out). Of runs sharing
    a seed the newest (`Run.date`: record date, else file mtime) is kept; the others are left out: a copy
    of it (the same best checkpoint file) or another run of its seed is one run, not another trial."""
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


def _trials_text(row: Row) -> str:
    """``2``, or ``2 (1 copy counted once, 1 repeat left out)``."""
    parts = []
    if row.copies:
        parts.append(f"{len(row.copies)} {'copy' if len(row.copies) == 1 else 'copies'} counted once")
    if row.repeats:
        parts.append(f"{len(row.repeats)} repeat{'s' if len(row.repeats) > 1 else ''} left out")
    return str(row.trials) + (f" ({', '.join(parts)})" if parts else "")


class TeacherIndex:
    """The top-1 of a student's teacher: the teacher run whose best checkpoint has the SHA-256 the student
    recorded (else the top-1 the student recorded from that checkpoint), or the run at the student's
    ``--path_t`` when no SHA-256 was recorded (older runs); never looked up by architecture."""

    def __init__(self, runs: List[Run]):
        ce_runs = [r for r in runs if not r.is_student]
        self.by_sha = {r.checkpoint: r for r in reversed(ce_runs) if r.checkpoint}
        self.by_dir = {str(r.path.resolve()): r for r in ce_runs}

    def top1(self, student: Run) -> Tuple[Optional[float], str]:
        if student.teacher_sha:
            found = self.by_sha.get(student.teacher_sha)
            if found is not None and found.best is not None:
                return found.best, ""
            if student.teacher_top1 is not None:
                return student.teacher_top1, ""
            return None, f"n/a: teacher {student.teacher_sha[:8]} not among the runs and its checkpoint records no top-1"
        if student.teacher_path:
            found = self.by_dir.get(str(Path(student.teacher_path).resolve().parent))
            if found is not None:
                return found.best, found.best_note
            return None, "n/a: its teacher checkpoint is not among the runs"
        return None, "n/a: the run does not record its teacher checkpoint"


def build_rows(runs: List[Run]) -> List[Row]:
    """One row per identity (`Run.options` and `Run.inputs`: every option and input file but the trial and
    seed), one run per seed in it (`one_run_per_seed`); ordered by dataset, student (its ce row first),
    teacher, method. Each row's ``config`` is what differs between the rows (`fill_config`)."""
    groups: Dict[str, List[Run]] = {}
    for run in runs:
        groups.setdefault(json.dumps([run.options, run.inputs], sort_keys=True, default=str), []).append(run)
    teachers = TeacherIndex(runs)
    rows = []
    for group in groups.values():
        members, copies, repeats, notes = one_run_per_seed(group)
        first = members[0]
        if first.is_student:
            refs = DISTILL_REFERENCES.get((first.dataset, first.teacher, first.arch, first.method), [])
            value, note = teachers.top1(first)  # one teacher file per row: it is one of the inputs
            teacher_acc = Stat.of([value], [note])
        else:
            refs = CE_REFERENCES.get((first.dataset, first.arch), [])
            teacher_acc = Stat(None, None, 0)
        weights = {m.weights for m in members}
        identical = len(members) > 1 and len(weights) == 1 and None not in weights
        stats = {}
        for col in STAT_COLUMNS:
            values = [col.value(m) for m in members]
            stats[col.key] = Stat.of([v for v, _ in values], [n for _, n in values], identical=identical)
        rows.append(Row(first.dataset, first.teacher, first.arch, first.method,
                        first.options, first.inputs, stats, len(members), teacher_acc, first.teacher_sha,
                        list(refs), [str(r.path) for r in members],
                        sorted({m.commit or "not recorded" for m in members}), [str(r.path) for r in copies],
                        [str(r.path) for r in repeats], notes))
    rows.sort(key=lambda r: (r.dataset, r.student, r.method != "ce", r.teacher, r.teacher_sha or "", r.method,
                             json.dumps([r.options, r.inputs], sort_keys=True, default=str)))
    fill_config(rows)
    return rows


# Options and inputs other columns show (dataset, student, teacher, method): not repeated in the config cell.
SHOWN_ELSEWHERE = frozenset({"dataset", "input", "model", "model_s", "model_t", "distill", "method", "path_t"})


def _text(value: Any) -> str:
    """An option's value as the cell shows it: ``1.0`` -> ``1``, lists comma-joined."""
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return _num(value)


def _settings(row: Row) -> Dict[Tuple[str, str], str]:
    """(``option``/``input``, name) -> text of a row's set options and inputs (an input as 8 digits of its
    SHA-256), without those other columns show."""
    out = {("option", k): _text(v) for k, v in row.options.items() if v is not None}
    out.update({("input", k): str(v)[:8] for k, v in row.inputs.items() if v is not None})
    return {k: v for k, v in out.items() if k[1] not in SHOWN_ELSEWHERE}


def common_settings(rows: Sequence[Row]) -> Dict[Tuple[str, str], str]:
    """The options and inputs (as `_settings`) set to the same value in every row."""
    settings = [_settings(r) for r in rows]
    common = dict(settings[0]) if settings else {}
    for other in settings[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def fill_config(rows: Sequence[Row]) -> None:
    """Set each row's ``config``: its options and inputs (`_settings`) that are not the same in every row, a
    method's own options included (only its rows have them), ``name value`` by name."""
    common = common_settings(rows)
    for row in rows:
        row.config = " ".join(f"{key[1]} {v}" for key, v in sorted(_settings(row).items(), key=_by_name)
                              if key not in common)


def _by_name(item: Tuple[Tuple[str, str], str]) -> Tuple[str, str]:
    return item[0][1], item[0][0]


def _teacher_text(row: Row) -> str:
    if not row.teacher:
        return "-"
    return row.teacher + (f" ({row.teacher_sha[:8]})" if row.teacher_sha else "")


def _delta_text(row: Row) -> str:
    value, label = row.delta()
    return "" if value is None else f"{value:+.2f} ({label})"


@dataclass(frozen=True)
class Column:
    """A table column: Markdown title and cell, CSV field names and values, JSON key and value."""

    title: str
    cell: Callable[[Row], str]
    csv: Tuple[str, ...]
    csv_values: Callable[[Row], Tuple[Any, ...]]
    numeric: bool = False


def _num4(v: Optional[float]) -> str:
    return "" if v is None else f"{v:.6g}"


def stat_columns(rows: Sequence[Row] = ()) -> List[Column]:
    """A Column per STAT_COLUMNS entry (an optional one only when some of ``rows`` has a value in it)."""
    out = []
    for col in STAT_COLUMNS:
        if col.optional and not any(r.stats[col.key].mean is not None for r in rows):
            continue
        text = col.text or Stat.text
        out.append(Column(col.title, (lambda r, k=col.key, t=text: t(r.stats[k])), (f"{col.key}_mean", f"{col.key}_std"),
                          (lambda r, k=col.key: (_num4(r.stats[k].mean), _num4(r.stats[k].std))), numeric=True))
    return out


def columns(rows: Sequence[Row] = ()) -> List[Column]:
    """The table's columns, in order (STAT_COLUMNS inserted after the config)."""
    return [
        Column("dataset", lambda r: r.dataset, ("dataset",), lambda r: (r.dataset,)),
        Column("teacher", _teacher_text, ("teacher", "teacher_sha256"), lambda r: (r.teacher, r.teacher_sha or "")),
        Column("teacher top-1", lambda r: r.teacher_acc.text(), ("teacher_mean", "teacher_std"),
               lambda r: (_num4(r.teacher_acc.mean), _num4(r.teacher_acc.std)), numeric=True),
        Column("student", lambda r: r.student, ("student",), lambda r: (r.student,)),
        Column("method", lambda r: r.method, ("method",), lambda r: (r.method,)),
        Column("config", lambda r: r.config or "-", ("config",), lambda r: (r.config,)),
        *stat_columns(rows),
        Column("trials", _trials_text, ("trials",), lambda r: (r.trials,), numeric=True),
        Column("commit", lambda r: ", ".join(r.commits), ("commit",), lambda r: (", ".join(r.commits),)),
        Column("Δ vs published", _delta_text, ("delta", "delta_of"),
               lambda r: (_num4(r.delta()[0]), r.delta()[1]), numeric=True),
        Column("published", lambda r: "; ".join(x.text() for x in r.references), ("reference",),
               lambda r: ("; ".join(x.text() for x in r.references),)),
    ]


def to_markdown(rows: List[Row]) -> str:
    """Markdown table (mean ± sample std over trials; percent); the topology columns only when a run has them."""
    cols = columns(rows)
    lines = ["| " + " | ".join(c.title for c in cols) + " |",
             "| " + " | ".join("---:" if c.numeric else "---" for c in cols) + " |"]
    lines += ["| " + " | ".join(c.cell(r).replace("|", "/") for c in cols) + " |" for r in rows]
    common = common_settings(rows)
    if common:
        lines += ["", "Equal in every row (not repeated in the config column): " +
                  ", ".join(f"{key[1]} {v}" for key, v in sorted(common.items(), key=_by_name)) + "."]
    return "\n".join(lines) + "\n"


def to_csv(rows: List[Row]) -> str:
    """CSV with separate mean / std columns (empty when unknown), the run folders joined by ';' and the notes."""
    cols = columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name for c in cols for name in c.csv] + ["identical_weights", "runs", "notes"])
    for r in rows:
        notes = "; ".join([f"{k}: {st.note}" for k, st in r.stats.items() if st.note] + r.notes)
        writer.writerow([v for c in cols for v in c.csv_values(r)] + [str(r.best.identical).lower(),
                                                                      ";".join(r.runs), notes])
    return buf.getvalue()


def to_json(rows: List[Row]) -> str:
    """Every row with its statistics, teacher, references and run folders (for programs)."""
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
                    "repeats": r.repeats, "notes": r.notes})
    return json.dumps(out, indent=1, ensure_ascii=False) + "\n"


def collect(roots: Sequence[os.PathLike], out: os.PathLike, evaluate: bool = False,
            data_root: Optional[str] = None) -> Tuple[Path, Path, List[Row]]:
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
    rows = build_rows(runs)
    for row in rows:
        for note in row.notes:
            print(f"note: {note}", file=sys.stderr)
    out = Path(out)
    if out.suffix in (".md", ".csv", ".json"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path, json_path = out.with_suffix(".md"), out.with_suffix(".csv"), out.with_suffix(".json")
    write_text(md, to_markdown(rows))
    write_text(csv_path, to_csv(rows))
    write_text(json_path, to_json(rows))
    return md, csv_path, rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Collect run folders into a Markdown + CSV + JSON results table.")
    p.add_argument("roots", nargs="*", default=["save_t_models", "save_s_models"],
                   help="folders searched (recursively) for run folders")
    p.add_argument("--out", default="results", help="output path without extension (writes .md, .csv and .json)")
    p.add_argument("--evaluate", action="store_true",
                   help="evaluate (evaluate.py) the best checkpoints that record no accuracy, on --data_root")
    p.add_argument("--data_root", default=None,
                   help="with --evaluate: where the data sets are (default: each run's recorded root, else ./data)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = build_parser().parse_args(argv)

    for suffix in (".md", ".csv", ".json"):
        check_output_file(str(args.out) + suffix, "--out")
    for root in args.roots:
        if not Path(root).is_dir():
            print(f"note: {root} not found, skipped", file=sys.stderr)
    md, csv_path, rows = collect(args.roots, args.out, evaluate=args.evaluate, data_root=args.data_root)
    print(md.read_text(), end="")
    print(f"{len(rows)} rows -> {md}, {csv_path}, {md.with_suffix('.json')}")
    return md


if __name__ == "__main__":
    from topkd_io import run_cli

    run_cli(main)
