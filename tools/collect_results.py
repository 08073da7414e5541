"""Collect finished runs into one results table (Markdown and CSV).

    python tools/collect_results.py [ROOT ...] [--out results]      # default roots: save_t_models save_s_models

A run folder is any folder under a root holding ``<arch>_best.pth`` (and usually ``<arch>_last.pth``,
``config.yaml``); official TopKD and RepDistiller run folders, which have no config.yaml, are read from
their names (``models.run_names``) and their last accuracy from their last ``ckpt_epoch_<N>.pth``. Every
checkpoint is read with the safe loader; a cell that cannot be filled says why (``n/a: ...``). Runs are grouped by (dataset, teacher, student, method, hyper-parameters) with the
trial left out; each group gets mean +- std over its trials of the best and the last test top-1, the
number of trials, the teacher's top-1 (teacher runs found under the roots), and published reference
numbers when known. Rows of one teacher -> student pair sit together, so baselines read side by side.
CE-only runs (teachers, vanilla students) have an empty student column.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ------------------------------------------------------------------------------------------------
# Published numbers (CIFAR-100 test top-1, %). Nothing here is computed by this project.
# ------------------------------------------------------------------------------------------------
TOPKD_LOGS = "TopKD log"
# Source: the official TopKD release (github.com/jekim5418/TopKD), its training logs in
# save_s_tda_ripsnet_t_logs_final/ (best and last epoch of the logged trial; teacher as printed there).
REPDISTILLER = "RepDistiller"
# Source: HobbitLong/RepDistiller README.md, "Benchmark Results on CIFAR-100" (the "Teacher <br> Student"
# and "KD" rows). The README does not say whether these are best or last epochs: listed as "best".


@dataclass(frozen=True)
class Reference:
    """One published number: best (and, when published, last) top-1 in percent, and where it comes from."""

    best: Optional[float]
    last: Optional[float]
    source: str

    def text(self) -> str:
        nums = f"{self.best:.2f}" + (f" / {self.last:.2f}" if self.last is not None else "")
        return f"{nums} ({self.source})"


# (dataset, architecture) -> references for a network trained alone with cross-entropy.
CE_REFERENCES: Dict[Tuple[str, str], List[Reference]] = {}
# (dataset, teacher, student, method) -> references for a distilled student.
DISTILL_REFERENCES: Dict[Tuple[str, str, str, str], List[Reference]] = {}


def _add_ce(dataset: str, arch: str, best: float, source: str, last: Optional[float] = None) -> None:
    CE_REFERENCES.setdefault((dataset, arch), []).append(Reference(best, last, source))


def _add_distill(dataset: str, teacher: str, student: str, method: str, best: float, source: str,
                 last: Optional[float] = None) -> None:
    DISTILL_REFERENCES.setdefault((dataset, teacher, student, method), []).append(Reference(best, last, source))


# TopKD official logs: teacher accuracy and the TopKD (KD + topology term) student.
_add_ce("cifar100", "resnet56", 73.50, TOPKD_LOGS)
_add_ce("cifar100", "wrn_40_2", 76.64, TOPKD_LOGS)
_add_distill("cifar100", "resnet56", "resnet20", "kd+topkd", 71.74, TOPKD_LOGS, last=71.66)
_add_distill("cifar100", "wrn_40_2", "shufflev1", "kd+topkd", 76.40, TOPKD_LOGS, last=76.06)

# RepDistiller README: networks trained alone (its teacher and student rows), with our model names.
for _arch, _acc in {"wrn_40_2": 75.61, "resnet56": 72.34, "resnet110": 74.31, "resnet32x4": 79.42,
                    "vgg13": 74.64, "ResNet50": 79.34, "wrn_16_2": 73.26, "wrn_40_1": 71.98,
                    "resnet20": 69.06, "resnet32": 71.14, "resnet8x4": 72.50, "vgg8": 70.36,
                    "mobilenetv2": 64.60, "shufflev1": 70.50, "shufflev2": 71.82}.items():
    _add_ce("cifar100", _arch, _acc, REPDISTILLER)
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
        _add_distill("cifar100", _t, _s, _method, _acc, REPDISTILLER)


# ------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One finished (or interrupted) training run."""

    path: Path
    dataset: str
    arch: str                      # the trained network
    teacher: str = ""              # empty for CE-only runs
    method: str = "ce"
    config: str = ""               # hyper-parameters that define the group (trial excluded)
    trial: str = "0"
    best: Optional[float] = None
    last: Optional[float] = None
    teacher_path: Optional[str] = None
    best_note: str = ""            # why ``best`` is None (shown in the table instead of a blank cell)
    last_note: str = ""
    topo: Dict[str, float] = field(default_factory=dict)  # the topology probe's values (see below)

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
    from distiller.registry import canonical_name

    distill = canonical_name(str(cfg.get("distill", "kd")))
    name = "ce" if distill == "kd" and not cfg.get("alpha") and not cfg.get("delta") else distill
    if cfg.get("delta"):
        name += "+" + str(cfg.get("method") or "topkd")
    return name


# Hyper-parameters shown in the "config" column (and part of the grouping), by config key.
STUDENT_CONFIG = (("gamma", "r"), ("alpha", "a"), ("beta", "b"), ("delta", "d"), ("kd_T", "T"),
                  ("lr", "lr"), ("epochs", "ep"))
TEACHER_CONFIG = (("input", "input"), ("lr", "lr"), ("weight_decay", "wd"), ("epochs", "ep"))


def config_text(cfg: Dict[str, Any], keys: Sequence[Tuple[str, str]]) -> str:
    return " ".join(f"{short} {_num(cfg[k])}" for k, short in keys if cfg.get(k) is not None)


def _read_yaml(path: Path) -> Dict[str, Any]:
    from topkd_io import read_yaml

    try:
        data = read_yaml(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_ckpt(path: Path) -> Tuple[Dict[str, Any], str]:
    """-> (scalar entries of a checkpoint, "") or ({}, why it could not be read). Read with the safe loader:
    an official ``*_last.pth`` pickles an ``argparse.Namespace`` and is refused, with that as the reason."""
    from topkd_io import UnsafeCheckpointError, load_checkpoint

    if not path.is_file():
        return {}, f"no {path.name}"
    try:
        ckpt = load_checkpoint(str(path))
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, UnsafeCheckpointError):  # never unpickled; say so on stderr too
            print(f"note: skipped {path}: {' '.join(str(exc).split())}", file=sys.stderr)
        reason = str(exc).split(";")[0].replace(str(path), path.name)
        return {}, f"checkpoint unreadable: {reason}"
    return {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}, ""


def _last_epoch_ckpt(folder: Path) -> Optional[Path]:
    """The official codes' last per-epoch checkpoint ``ckpt_epoch_<N>.pth`` (largest N), if any."""
    found = []
    for p in folder.glob("ckpt_epoch_*.pth"):
        m = re.fullmatch(r"ckpt_epoch_(\d+)\.pth", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def _accuracy(ckpt: Dict[str, Any], key: str, note: str, path: Path) -> Tuple[Optional[float], str]:
    """``ckpt[key]`` as a float, or None and why (``n/a: ...``)."""
    if note:
        return None, f"n/a: {note}"
    value = _float(ckpt.get(key))
    return (value, "") if value is not None else (None, f"n/a: {path.name} holds no {key}")


def _float(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _from_folder_name(path: Path) -> Optional[Dict[str, Any]]:
    """Settings of a run without config.yaml from its folder name (official TopKD / RepDistiller layouts, ours),
    as config.yaml keys; None when the name follows no layout (e.g. a RipsNet folder)."""
    from models.run_names import parse_run_name

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
    from models import ARCH_ALIASES

    return ARCH_ALIASES.get(name, name)


def read_run(folder: Path) -> Optional[Run]:
    """A Run from a folder holding ``<arch>_best.pth`` and a classifier's config.yaml (or an official run
    folder name); None otherwise (not a training run, e.g. a RipsNet folder). Accuracies it cannot read
    carry a note saying why."""
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
    info = {"dataset": str(cfg.get("dataset", "?")), "arch": arch, "trial": str(cfg.get("trial", 0))}
    if student:
        info.update(teacher=_canonical_arch(str(cfg.get("model_t") or "?")), method=method_key(cfg),
                    config=config_text(cfg, STUDENT_CONFIG))
    else:
        tag = str(cfg.get("dataset", "?")) + ("_pi" if cfg.get("input") == "pi" else "")
        info.update(dataset=tag, config=config_text(cfg, TEACHER_CONFIG))
    best, best_note = _accuracy(best_ckpt, "best_acc", best_err, best_path)
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
    return Run(path=folder, best=best, last=last, teacher_path=cfg.get("path_t"), best_note=best_note,
               last_note=last_note, topo=topology_values(folder, last_ckpt), **info)


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
# Topology columns (issue 18): the student-time topology probe's values, mean ± std over trials.
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


def topo_stats(members: List["Run"]) -> Dict[str, "Stat"]:
    """Mean ± std over the members that have each topology value (``{}`` when none has any)."""
    if not any(r.topo for r in members):
        return {}
    return {key: Stat.of([r.topo.get(key) for r in members if r.topo]) for key, _ in TOPO_COLUMNS}


def _topo_text(st: Optional["Stat"]) -> str:
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

    @classmethod
    def of(cls, values: Iterable[Optional[float]], notes: Iterable[str] = ()) -> "Stat":
        values = list(values)
        notes = [n for v, n in zip(values, list(notes) or [""] * len(values)) if v is None and n]
        vals = [v for v in values if v is not None]
        missing, note = len(values) - len(vals), (notes[0] if notes else "")
        if not vals:
            return cls(None, None, 0, missing, note)
        std = statistics.stdev(vals) if len(vals) > 1 else None  # sample std (ddof 1)
        return cls(statistics.fmean(vals), std, len(vals), missing, note)

    def text(self) -> str:
        if self.mean is None:
            return self.note
        out = f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")
        if self.missing and self.note:
            out += f" ({self.missing} of {self.n + self.missing} {self.note})"
        return out


@dataclass
class Row:
    dataset: str
    teacher: str
    student: str
    method: str
    config: str
    best: Stat
    last: Stat
    trials: int
    teacher_acc: Stat
    references: List[Reference] = field(default_factory=list)
    runs: List[str] = field(default_factory=list)
    topo: Dict[str, Stat] = field(default_factory=dict)  # topology columns (TOPO_COLUMNS)


def _group_key(run: Run) -> Tuple[str, str, str, str, str]:
    if run.is_student:
        return (run.dataset, run.teacher, run.arch, run.method, run.config)
    return (run.dataset, run.arch, "", "ce", run.config)


def _teacher_stat(dataset: str, teacher: str, members: List[Run], runs: List[Run]) -> Stat:
    """Top-1 of the teachers the members used (by --path_t), else of every CE run of that arch and data set."""
    by_dir = {str(r.path.resolve()): r for r in runs if not r.is_student}
    used = {str(Path(m.teacher_path).resolve().parent) for m in members if m.teacher_path}
    picked = [by_dir[d] for d in sorted(used) if d in by_dir]
    if not picked:
        picked = [r for r in runs if not r.is_student and r.arch == teacher and r.dataset == dataset]
    return Stat.of(r.best for r in picked)


def build_rows(runs: List[Run]) -> List[Row]:
    """One row per group, ordered by dataset, teacher, student (CE rows of a teacher first), method."""
    groups: Dict[Tuple[str, str, str, str, str], List[Run]] = {}
    for run in runs:
        groups.setdefault(_group_key(run), []).append(run)
    rows = []
    for (dataset, teacher, student, method, config), members in groups.items():
        if student:
            refs = DISTILL_REFERENCES.get((dataset, teacher, student, method), [])
            teacher_acc = _teacher_stat(dataset, teacher, members, runs)
        else:
            refs = CE_REFERENCES.get((dataset, teacher), [])
            teacher_acc = Stat(None, None, 0)
        rows.append(Row(dataset, teacher, student, method, config,
                        Stat.of([r.best for r in members], [r.best_note for r in members]),
                        Stat.of([r.last for r in members], [r.last_note for r in members]),
                        len(members), teacher_acc, list(refs),
                        [str(r.path) for r in members], topo_stats(members)))
    rows.sort(key=lambda r: (r.dataset, r.teacher, r.student, r.method != "ce", r.method, r.config))
    return rows


COLUMNS = ("dataset", "teacher", "teacher top-1", "student", "method", "config", "best top-1", "last top-1",
           "trials", "reference best / last")


def _cells(row: Row) -> List[str]:
    return [row.dataset, row.teacher, row.teacher_acc.text(), row.student or "-", row.method, row.config,
            row.best.text(), row.last.text(), str(row.trials), "; ".join(r.text() for r in row.references)]


def to_markdown(rows: List[Row]) -> str:
    """Markdown table (mean ± sample std over trials; percent); the topology columns (`TOPO_COLUMNS`) are
    added before the references when any row has them."""
    topo = any(r.topo for r in rows)
    columns = COLUMNS[:-1] + tuple(t for _, t in TOPO_COLUMNS if topo) + COLUMNS[-1:]
    numeric = {t for _, t in TOPO_COLUMNS}
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if "top-1" in c or c == "trials" or c in numeric else "---"
                               for c in columns) + " |"]
    for r in rows:
        cells = _cells(r)
        if topo:
            cells = cells[:-1] + [_topo_text(r.topo.get(k)) for k, _ in TOPO_COLUMNS] + cells[-1:]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("dataset", "teacher", "teacher_mean", "teacher_std", "student", "method", "config", "best_mean",
               "best_std", "last_mean", "last_std", "trials", "reference", "runs", "notes")


def to_csv(rows: List[Row]) -> str:
    """CSV with separate mean / std columns (empty when unknown) and the run folders joined by ';'."""
    def num(v: Optional[float]) -> str:
        return "" if v is None else f"{v:.4f}"

    def topo_num(v: Optional[float]) -> str:
        return "" if v is None else f"{v:.6g}"

    topo = any(r.topo for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + tuple(f"{k}_{s}" for k, _ in TOPO_COLUMNS if topo for s in ("mean", "std")))
    for r in rows:
        extra = [topo_num(getattr(r.topo.get(k), s, None)) for k, _ in TOPO_COLUMNS if topo for s in ("mean", "std")]
        writer.writerow([r.dataset, r.teacher, num(r.teacher_acc.mean), num(r.teacher_acc.std), r.student,
                         r.method, r.config, num(r.best.mean), num(r.best.std), num(r.last.mean),
                         num(r.last.std), r.trials, "; ".join(x.text() for x in r.references), ";".join(r.runs),
                         "; ".join(f"{k}: {st.note}" for k, st in (("best", r.best), ("last", r.last)) if st.note)]
                        + extra)
    return buf.getvalue()


def collect(roots: Sequence[os.PathLike], out: os.PathLike) -> Tuple[Path, Path, List[Row]]:
    """Find runs under ``roots``; write ``<out>.md`` and ``<out>.csv`` -> (md path, csv path, rows)."""
    existing = [Path(r) for r in roots if Path(r).is_dir()]
    if not existing:
        raise FileNotFoundError(f"none of the run roots exists ({', '.join(map(str, roots))}); pass folders "
                                f"holding run folders, e.g. save_t_models save_s_models")
    runs = find_runs(existing)
    if not runs:
        raise FileNotFoundError(f"no run folder (with <arch>_best.pth) under {', '.join(map(str, existing))}; "
                                f"train a teacher or student first")
    rows = build_rows(runs)
    out = Path(out)
    if out.suffix in (".md", ".csv"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path = out.with_suffix(".md"), out.with_suffix(".csv")
    md.write_text(to_markdown(rows))
    csv_path.write_text(to_csv(rows))
    return md, csv_path, rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Collect run folders into a Markdown + CSV results table.")
    p.add_argument("roots", nargs="*", default=["save_t_models", "save_s_models"],
                   help="folders searched (recursively) for run folders")
    p.add_argument("--out", default="results", help="output path without extension (writes .md and .csv)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = build_parser().parse_args(argv)
    from topkd_io import check_output_file

    for suffix in (".md", ".csv"):
        check_output_file(str(args.out) + suffix, "--out")
    for root in args.roots:
        if not Path(root).is_dir():
            print(f"note: {root} not found, skipped", file=sys.stderr)
    md, csv_path, rows = collect(args.roots, args.out)
    print(md.read_text(), end="")
    print(f"{len(rows)} rows -> {md}, {csv_path}")
    return md


if __name__ == "__main__":
    from topkd_io import run_cli

    run_cli(main)
