"""README command 1: the whole TopKD pipeline (and a TGD student) on scikit-learn's digits.

    python tools/quickstart.py [--fast] [--out runs/quickstart]

Each stage through its own script's ``main``: a resnet20 teacher, its point clouds and exact persistence images,
a RipsNet, resnet8 students (CE only, KD, KD+TopKD, KD+TopKD-exact, 3 seeds each) and a TGD student; then the
results table (``results.md``: top-1 mean ± std over the seeds and the topology columns; a method whose topology
term stayed under 0.1 % of the loss is marked) and the figures. The teacher learns from the whole training
split, the students from a fixed stratified tenth of it (``--train_fraction``): on all of it every student
reaches 99.2-99.7 % and the table could not tell methods apart. ``--fast``: the one-minute smoke version.
"""
import argparse
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

# The stages, through their own scripts' main (installed as modules by scripts/setup_env.sh).
import generate_image_PI
import generate_PCD_PI
import train_ripsnet
import train_student
import train_teacher
from tools.collect_results import TOPO_COLUMNS
from topkd_io import LOCK_NAME, FolderLock, TopKDError, run_cli

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Budget:
    """Epochs and sizes of one quickstart flavour; ``train_fraction``: the students' share of the training split."""

    teacher_epochs: int
    student_epochs: int
    passes: int
    ripsnet_epochs: int
    pi_teacher_epochs: int
    seeds: Tuple[int, ...] = (0, 1, 2)
    train_fraction: float = 0.1
    image_size: int = 16


FULL = Budget(teacher_epochs=20, student_epochs=40, passes=30, ripsnet_epochs=80, pi_teacher_epochs=8)
# --fast trains the RipsNet as long as the full run: after 3 epochs its held-out images were off by a relative
# L2 of 1.02 (no better than blank ones), nearly the same for every cloud, and the KD+TopKD term sat at 1e-7 of
# the loss; after 80 epochs, 0.30 (chosen by the RipsNet's own held-out error, not by any student's result).
FAST = Budget(teacher_epochs=4, student_epochs=1, passes=2, ripsnet_epochs=80, pi_teacher_epochs=1, seeds=(0, 1))

TEACHER, STUDENT, PI_TEACHER = "resnet20", "resnet8", "resnet8"
TRAIN_SPLIT = 1437  # digits' fixed training split
# name -> extra train_student.py flags; every student shares seed, epochs and data.
STUDENTS: Dict[str, List[str]] = {
    "CE only": ["--distill", "kd", "-r", "1", "-a", "0"],
    "KD": ["--distill", "kd", "-r", "1", "-a", "1"],
    "KD+TopKD": ["--distill", "kd", "-r", "1", "-a", "1", "-d", "5", "--method", "topkd"],
    "KD+TopKD-exact": ["--distill", "kd", "-r", "1", "-a", "1", "-d", "5", "--method", "topkd_exact"],
}


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def timed(fn: Callable[[], Any]) -> Tuple[Any, float]:
    start = time.perf_counter()
    return fn(), time.perf_counter() - start


def threads() -> int:
    return int(os.environ.get("TOPKD_THREADS", "0")) or min(2, os.cpu_count() or 1)


def common_train_args(budget: Budget, epochs: int, seed: int = 0) -> List[str]:
    """Flags shared by every classifier run: digits, small images, one thread, a short schedule, the seed."""
    decay = ",".join(str(max(1, round(epochs * f))) for f in (0.6, 0.8)) if epochs >= 5 else ""
    return ["--dataset", "digits", "--image_size", str(budget.image_size), "--epochs", str(epochs),
            "--batch_size", "64", "--lr", "0.05", "--lr_decay_epochs", decay, "--num_workers", "0",
            "--seed", str(seed), "--threads", str(threads())]


def train_one_student(out: Path, name: str, seed: int, budget: Budget, flags: List[str]) -> Tuple[Path, Dict, float]:
    """Train one student (its shared flags: the fixed training fraction, its seed and trial number)."""
    folder = out / "students" / name.replace("+", "_").replace(" ", "_") / f"seed_{seed}"
    summary, secs = timed(lambda: train_student.main(
        ["--model_s", STUDENT, "--run_dir", str(folder), "--train_fraction", str(budget.train_fraction), "--trial",
         str(seed)] + flags + common_train_args(budget, budget.student_epochs, seed)))
    return folder, summary, secs


def row(model: str, role: str, method: str, summary: Dict[str, Any], secs: float, seed: Optional[int] = None,
        term: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One table row; ``term``: the run's topology term (`topology_term`), for the students that have one."""
    return dict(model=model, role=role, method=method, seed=seed, best=summary["best_acc"], last=summary["last_acc"],
                seconds=secs, topo=(summary.get("probes") or {}).get("topo", {}), term=term)


def topology_term(run_dir: Path, ripsnet: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A student's topology term in its last epoch (TensorBoard logs): ``value`` (the mean ``loss_tda``), ``share``
    (of the training loss) and ``ripsnet_rel_l2`` (the RipsNet's held-out error, from its stage-3 summary)."""
    from tools.figures import read_scalars  # the TensorBoard reader

    scalars = read_scalars(run_dir)
    value, total = float(scalars["train/loss_tda"][1][-1]), float(scalars["train/loss"][1][-1])
    return dict(value=value, share=abs(value / total) if total else float("inf"),
                ripsnet_rel_l2=None if ripsnet is None else float(ripsnet["held_out"]["rel_l2"]))


def run(out: Path, budget: Budget) -> List[Dict[str, Any]]:
    banner(f"1/5 teacher {TEACHER} on digits ({budget.teacher_epochs} epochs)")
    summary, secs = timed(lambda: train_teacher.main(
        ["--model", TEACHER, "--run_dir", str(out / "teacher")] + common_train_args(budget, budget.teacher_epochs)))
    rows = [row(TEACHER, "teacher", "CE", summary, secs)]
    teacher = ["--path_t", str(out / "teacher" / f"{TEACHER}_best.pth")]

    banner(f"2/5 point clouds and exact persistence images ({budget.passes} passes over the training set)")
    pcd_dir = out / "pcd"
    _, secs = timed(lambda: generate_PCD_PI.main(teacher + [
        "--dataset", "digits", "--image_size", str(budget.image_size), "--batch_size", "64", "--passes",
        str(budget.passes), "--dims", "0", "--num_workers", "0", "--out_dir", str(pcd_dir), "--seed", "0"]))
    print(f"stage 2 took {secs:.1f} s", flush=True)

    banner(f"3/5 RipsNet (at most {budget.ripsnet_epochs} epochs, early stopping)")
    rips_dir = out / "ripsnet"
    rips, secs = timed(lambda: train_ripsnet.main(
        ["--data_dir", str(pcd_dir), "--dim", "0", "--operator", "mean", "--epochs", str(budget.ripsnet_epochs),
         "--patience", "20", "--run_dir", str(rips_dir), "--seed", "0"]))
    print(f"stage 3 took {secs:.1f} s", flush=True)

    for i, (name, flags) in enumerate(STUDENTS.items(), 1):
        banner(f"4/5 student {i}/{len(STUDENTS)}: {STUDENT} with {name} ({budget.student_epochs} epochs on "
               f"{budget.train_fraction:g} of the training set, seeds {', '.join(map(str, budget.seeds))})")
        extra = (["--rips_path", str(rips_dir / "mean_best.pth")] if "topkd" in flags else
                 ["--pi_params", str(pcd_dir)] if "topkd_exact" in flags else [])
        for seed in budget.seeds:
            folder, summary, secs = train_one_student(out, name, seed, budget, teacher + flags + extra)
            term = topology_term(folder, rips if "topkd" in flags else None) if extra else None
            rows.append(row(STUDENT, "student", name, summary, secs, seed, term))

    banner("5/5 TGD: image persistence images, a PI teacher, a TGD student")
    pi_root = out / "image_pi"
    _, secs = timed(lambda: generate_image_PI.main(
        ["--dataset", "digits", "--out", str(pi_root), "--num_workers", str(threads())]))
    print(f"image PIs took {secs:.1f} s", flush=True)
    summary, secs = timed(lambda: train_teacher.main(
        ["--model", PI_TEACHER, "--input", "pi", "--pi_root", str(pi_root), "--run_dir", str(out / "pi_teacher")]
        + common_train_args(budget, budget.pi_teacher_epochs)))
    rows.append(row(PI_TEACHER, "PI teacher", "CE on image PIs", summary, secs))
    tgd = ["--distill", "tgd", "--path_t2", str(out / "pi_teacher" / f"{PI_TEACHER}_best.pth"), "--pi_root",
           str(pi_root)]
    for seed in budget.seeds:
        _, summary, secs = train_one_student(out, "TGD", seed, budget, teacher + tgd)
        rows.append(row(STUDENT, "student", "TGD", summary, secs, seed))
    return rows


def mean_std(values: List[float], digits: int = 2) -> str:
    """``mean ± sample std`` (the mean alone for one value; ``-`` for none)."""
    vals = [v for v in values if v is not None and v == v]
    if not vals:
        return "-"
    text = f"{statistics.fmean(vals):.{digits}f}" if digits else f"{statistics.fmean(vals):.3g}"
    if len(vals) > 1:
        sd = statistics.stdev(vals)
        text += f" ± {sd:.{digits}f}" if digits else f" ± {sd:.2g}"
    return text


# A topology term below this share of the training loss in the last epoch is marked inactive in the table:
# the method then trained as its base method did.
INACTIVE_SHARE = 1e-3


def inactive_note(method: str, runs: List[Dict[str, Any]]) -> Optional[str]:
    """Why ``method``'s topology term counts as inactive (its seeds' last-epoch values, their share of the
    loss, and the RipsNet's held-out error where it has one), or None when it was active in every seed."""
    terms = [r["term"] for r in runs if r.get("term")]
    weak = [t for t in terms if t["share"] < INACTIVE_SHARE]
    if not weak:
        return None
    text = (f"† {method}: the topology term was under {INACTIVE_SHARE:g} of the training loss in the last epoch "
            f"in {len(weak)} of {len(terms)} seeds (loss_tda " + ", ".join(f"{t['value']:.2g}" for t in weak) + ")")
    rel = weak[0]["ripsnet_rel_l2"]
    if rel is not None:
        text += f"; its RipsNet's held-out images are off by a relative L2 of {rel:.2f} (1 = no better than blank ones)"
    return text + "."


def table_head(head: List[str], left: int) -> List[str]:
    return ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * left + ["---:"] * (len(head) - left)) + " |"]


def results_table(rows: List[Dict[str, Any]]) -> str:
    """One row per network and method (first seen first): top-1 mean ± std over its seeds, the topology columns,
    time; a method whose topology term was inactive (`inactive_note`) is marked, with a note under the table."""
    groups: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["role"], r["method"]), []).append(r)
    lines = table_head(["model", "role", "method", "seeds", "best top-1 (%)", "last top-1 (%)"]
                       + [t for _, t in TOPO_COLUMNS] + ["time (s)"], 3)
    notes = []
    for (model, role, method), runs in groups.items():
        note = inactive_note(method, runs)
        notes += [note] if note else []
        topo = [mean_std([r["topo"].get(k) for r in runs], 0) for k, _ in TOPO_COLUMNS]
        lines.append(f"| {model} | {role} | {method}{' (inactive topology term †)' if note else ''} | {len(runs)} | "
                     f"{mean_std([r['best'] for r in runs])} | {mean_std([r['last'] for r in runs])} | "
                     + " | ".join(topo) + f" | {sum(r['seconds'] for r in runs):.0f} |")
    return "\n".join(lines + ([""] + notes if notes else []))


def seed_table(rows: List[Dict[str, Any]]) -> str:
    """Every student run on its own line: method, seed, best / last top-1, the topology values."""
    lines = table_head(["method", "seed", "best top-1 (%)", "last top-1 (%)"] + [t for _, t in TOPO_COLUMNS], 1)
    for r in rows:
        if r["seed"] is not None:
            topo = [f"{r['topo'][k]:.4g}" if k in r["topo"] else "-" for k, _ in TOPO_COLUMNS]
            lines.append(f"| {r['method']} | {r['seed']} | {r['best']:.2f} | {r['last']:.2f} | " + " | ".join(topo)
                         + " |")
    return "\n".join(lines)


# Written into every folder the quickstart makes: only such a folder is ever emptied by a later quickstart.
MARKER = ".topkd-quickstart"


def check_out_folder(out: Path) -> None:
    """`TopKDError` unless ``out`` is absent, empty, or a folder an earlier quickstart made."""
    if out.exists() and not out.is_dir():
        raise TopKDError(f"--out {out} is a file, not a folder; pass a folder path")
    if not out.is_dir() or (out / MARKER).is_file():
        return
    foreign = sorted(e.name for e in out.iterdir() if e.name != LOCK_NAME)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" (+{len(foreign) - 3} more)" if len(foreign) > 3 else "")
        raise TopKDError(f"--out {out} holds files the quickstart did not write ({shown}); pass a new or empty "
                         f"folder (the quickstart only replaces a folder it made itself)")


def main(argv: Optional[List[str]] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="one-minute smoke version (numbers not meaningful)")
    parser.add_argument("--out", default=None,
                        help="run folder (default runs/quickstart[_fast]): a new or empty folder, or one an earlier "
                             "quickstart made (then replaced); any other folder is refused")
    args = parser.parse_args(argv)
    budget = FAST if args.fast else FULL
    out = Path(args.out or ROOT / "runs" / ("quickstart_fast" if args.fast else "quickstart")).resolve()
    check_out_folder(out)
    with FolderLock(out, flag="--out", what="quickstart folder"):
        check_out_folder(out)  # again, under the lock
        for entry in out.iterdir() if (out / MARKER).is_file() else ():  # a folder it made: emptied, lock kept
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.name != LOCK_NAME:
                entry.unlink()
        (out / MARKER).write_text("made by tools/quickstart.py; a later quickstart with this --out replaces the "
                                  "folder\n")
        start = time.perf_counter()
        rows = run(out, budget)
        from tools import figures  # matplotlib, on first use

        written = figures.quickstart_figures(out)
        text = (f"# topkd quickstart on digits{' (--fast smoke run)' if args.fast else ''}\n\n"
                f"Teacher: all {TRAIN_SPLIT} training images; students: a fixed stratified {budget.train_fraction:g} "
                f"of them, seeds {', '.join(map(str, budget.seeds))} (mean ± sample std over the seeds). Topology "
                f"columns: the student's embedding against the teacher's on 4 fixed test batches of 64 (H0 distances "
                f"with each cloud divided by its diameter, persistence-image MSE, linear CKA; engine.topo_eval).\n\n"
                f"{results_table(rows)}\n\nPer seed:\n\n{seed_table(rows)}\n\nTotal time: "
                f"{time.perf_counter() - start:.0f} s (figures included). Figures: "
                f"{', '.join(f.name for f in written) or 'none'}.\n")
        (out / "results.md").write_text(text)
    banner("results")
    print(text)
    print(f"run folder: {out}")
    return out


if __name__ == "__main__":
    run_cli(main)
