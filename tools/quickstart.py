"""README command 1: the whole TopKD pipeline (and a TGD student) on scikit-learn's digits.

    python tools/quickstart.py [--fast] [--out runs/quickstart]

Each stage through its own script's ``main``: a resnet20 teacher, its point clouds and exact persistence images,
a RipsNet, resnet8 students (CE only, KD, KD+TopKD, KD+TopKD-exact, 3 seeds each), TGD students (from scratch,
and warm-started from the CE-only student as TGD's own recipe, beside KD warm-started the same way); then the
results table (``results.md``: top-1 mean ± std over the seeds, the topology columns and each row's settings as
its run recorded them; a method whose topology term stayed under 0.1 % of the loss is marked), the paired
differences against KD (`tools.paired`) and the figures. The teacher learns from the whole training
split, the students from a fixed stratified tenth of it (``--train_fraction``): on all of it every student
reaches 99.2-99.7 % and the table could not tell methods apart. ``--fast``: the one-minute smoke version.
"""
import argparse
import math
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# The stages, through their own scripts' main (installed as modules by scripts/setup_env.sh).
import generate_image_PI
import generate_PCD_PI
import train_ripsnet
import train_student
import train_teacher
from tools.collect_results import TOPO_COLUMNS
from tools.paired import paired_difference
from topkd_io import LOCK_NAME, FolderLock, TopKDError, read_yaml, run_cli

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Budget:
    """Epochs and sizes of one quickstart flavour; ``train_fraction``: the students' share of the training split;
    ``warm_epochs``: the warm-started students' (TGD's recipe fine-tunes with the same --epochs as from scratch)."""

    teacher_epochs: int
    student_epochs: int
    warm_epochs: int
    passes: int
    ripsnet_epochs: int
    pi_teacher_epochs: int
    seeds: Tuple[int, ...] = (0, 1, 2)
    train_fraction: float = 0.1
    image_size: int = 16


FULL = Budget(teacher_epochs=20, student_epochs=40, warm_epochs=40, passes=30, ripsnet_epochs=80, pi_teacher_epochs=8)
# --fast trains the RipsNet as long as the full run: after 3 epochs its held-out images were off by a relative
# L2 of 1.02 (no better than blank ones), nearly the same for every cloud, and the KD+TopKD term sat at 1e-7 of
# the loss; after 80 epochs, 0.30 (chosen by the RipsNet's own held-out error, not by any student's result).
FAST = Budget(teacher_epochs=4, student_epochs=1, warm_epochs=1, passes=2, ripsnet_epochs=80, pi_teacher_epochs=1,
              seeds=(0, 1))

TEACHER, STUDENT, PI_TEACHER = "resnet20", "resnet8", "resnet8"
TRAIN_SPLIT = 1437  # digits' fixed training split
# name -> extra train_student.py flags; every student shares seed, epochs and data.
STUDENTS: Dict[str, List[str]] = {
    "CE only": ["--distill", "kd", "-r", "1", "-a", "0"],
    "KD": ["--distill", "kd", "-r", "1", "-a", "1"],
    "KD+TopKD": ["--distill", "kd", "-r", "1", "-a", "1", "-d", "5", "--method", "topkd"],
    "KD+TopKD-exact": ["--distill", "kd", "-r", "1", "-a", "1", "-d", "5", "--method", "topkd_exact"],
}
BASELINE = "KD"  # every student is compared with the KD students of the same seeds and initialisation
SCRATCH = "scratch"
WARM = "CE-only student of the same seed (its last epoch)"  # the --init_s of the warm-started students
# The image-PI window covers this share of the digits training split's diagram points (births and persistences
# each), its upper ends rounded up to a multiple of WINDOW_STEP.
WINDOW_COVERAGE, WINDOW_STEP = 0.99, 0.05


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


def student_folder(out: Path, name: str, seed: int) -> Path:
    return out / "students" / name.replace("+", "_").replace(",", "").replace(" ", "_") / f"seed_{seed}"


def train_one_student(out: Path, name: str, seed: int, budget: Budget, flags: List[str],
                      epochs: Optional[int] = None) -> Tuple[Path, Dict, float]:
    """Train one student (its shared flags: the fixed training fraction, its seed and trial number)."""
    folder = student_folder(out, name, seed)
    summary, secs = timed(lambda: train_student.main(
        ["--model_s", STUDENT, "--run_dir", str(folder), "--train_fraction", str(budget.train_fraction), "--trial",
         str(seed)] + flags + common_train_args(budget, epochs or budget.student_epochs, seed)))
    return folder, summary, secs


def row(model: str, role: str, method: str, summary: Dict[str, Any], secs: float, folder: Path,
        seed: Optional[int] = None, term: Optional[Dict[str, Any]] = None, init: str = SCRATCH) -> Dict[str, Any]:
    """One table row; ``term``: the run's topology term (`topology_term`), for the students that have one;
    ``config``: the run's recorded configuration (its config.yaml); ``init``: `SCRATCH` or `WARM`."""
    return dict(model=model, role=role, method=method, seed=seed, best=summary["best_acc"], last=summary["last_acc"],
                seconds=secs, topo=(summary.get("probes") or {}).get("topo", {}), term=term, init=init,
                config=read_yaml(folder / "config.yaml"))


def topology_term(run_dir: Path, ripsnet: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A student's topology term in its last epoch (TensorBoard logs): ``value`` (the mean ``loss_tda``), ``share``
    (of the training loss) and ``ripsnet_rel_l2`` (the RipsNet's held-out error, from its stage-3 summary)."""
    from tools.figures import read_scalars  # the TensorBoard reader

    scalars = read_scalars(run_dir)
    value, total = float(scalars["train/loss_tda"][1][-1]), float(scalars["train/loss"][1][-1])
    return dict(value=value, share=abs(value / total) if total else float("inf"),
                ripsnet_rel_l2=None if ripsnet is None else float(ripsnet["held_out"]["rel_l2"]))


def training_diagrams(dataset: str = "digits", data_root: str = "./data") -> List[np.ndarray]:
    """The H0 diagrams ``[k, 2]`` (birth, death) that generate_image_PI.py turns into images, of every image of
    the TRAINING split, filtered as its default `ImagePIParams` filter them (2C diagrams per image)."""
    from datasets.pi_images import raw_images
    from topology.image_pi import ImagePIParams, diagrams_of_image

    source = raw_images(dataset, data_root, "train")
    return diagrams_of_image(np.stack([source[i][0].numpy() for i in range(len(source))]), ImagePIParams())


def diagram_points(diagrams: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """-> (births, persistences) of all points of ``diagrams`` (each ``[k, 2]``: birth, death)."""
    points = np.concatenate([np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in diagrams])
    return points[:, 0], points[:, 1] - points[:, 0]


def pi_window(diagrams: Sequence[np.ndarray], coverage: float = WINDOW_COVERAGE,
              step: float = WINDOW_STEP) -> Tuple[float, float, float, float]:
    """The image-PI window ``(0, bmax, 0, pmax)`` (generate_image_PI.py --pi_range, pixel-value units) that
    covers ``coverage`` of the diagrams' births and of their persistences: each upper end is that quantile
    rounded up to a multiple of ``step`` (at least one step)."""
    births, pers = diagram_points(diagrams)
    if not len(births):
        raise ValueError("no diagram points to choose a persistence-image window from")
    ends = [step * max(1, math.ceil(float(np.quantile(v, coverage)) / step - 1e-9)) for v in (births, pers)]
    return 0.0, round(ends[0], 9), 0.0, round(ends[1], 9)


def share_outside(diagrams: Sequence[np.ndarray], window: Sequence[float]) -> float:
    """The share of the diagrams' points whose birth or persistence lies outside ``window`` (bmin, bmax, pmin, pmax)."""
    births, pers = diagram_points(diagrams)
    inside = (births >= window[0]) & (births <= window[1]) & (pers >= window[2]) & (pers <= window[3])
    return float(1.0 - inside.mean()) if len(births) else 0.0


def window_text(diagrams: Sequence[np.ndarray], window: Sequence[float], secs: float) -> str:
    """How the image-PI window was chosen, for results.md."""
    from topology.image_pi import ImagePIParams

    default = ImagePIParams().im_range
    return (f"Image-PI window (TGD): births [{window[0]:g}, {window[1]:g}] x persistences [{window[2]:g}, "
            f"{window[3]:g}] (generate_image_PI.py --pi_range {' '.join(f'{v:g}' for v in window)}), chosen from the "
            f"data before any training: the {WINDOW_COVERAGE:.0%} quantile of the births and of the persistences of "
            f"the {len(diagram_points(diagrams)[0])} points in the digits training split's filtered diagrams, each "
            f"rounded up to a multiple of {WINDOW_STEP:g} ({secs:.1f} s). TGD's default window "
            f"[{default[0]:g}, {default[1]:g}] x [{default[2]:g}, {default[3]:g}] leaves "
            f"{share_outside(diagrams, default):.0%} of these points outside; this one "
            f"{share_outside(diagrams, window):.1%}.")


def run(out: Path, budget: Budget) -> Tuple[List[Dict[str, Any]], str]:
    """Every stage -> (the table rows, how the image-PI window was chosen)."""
    banner(f"1/5 teacher {TEACHER} on digits ({budget.teacher_epochs} epochs)")
    summary, secs = timed(lambda: train_teacher.main(
        ["--model", TEACHER, "--run_dir", str(out / "teacher")] + common_train_args(budget, budget.teacher_epochs)))
    rows = [row(TEACHER, "teacher", "CE", summary, secs, out / "teacher")]
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
            rows.append(row(STUDENT, "student", name, summary, secs, folder, seed, term))

    banner("5/5 TGD: image persistence images (window from the training diagrams), a PI teacher, TGD students")
    (diagrams, window), secs = timed(lambda: (lambda d: (d, pi_window(d)))(training_diagrams()))
    window_note = window_text(diagrams, window, secs)
    print(window_note, flush=True)
    pi_root = out / "image_pi"
    _, secs = timed(lambda: generate_image_PI.main(
        ["--dataset", "digits", "--out", str(pi_root), "--num_workers", str(threads()), "--pi_range"]
        + [str(v) for v in window]))
    print(f"image PIs took {secs:.1f} s", flush=True)
    summary, secs = timed(lambda: train_teacher.main(
        ["--model", PI_TEACHER, "--input", "pi", "--pi_cache", str(pi_root), "--run_dir", str(out / "pi_teacher")]
        + common_train_args(budget, budget.pi_teacher_epochs)))
    rows.append(row(PI_TEACHER, "PI teacher", "CE on image PIs", summary, secs, out / "pi_teacher"))
    tgd = ["--distill", "tgd", "--path_t2", str(out / "pi_teacher" / f"{PI_TEACHER}_best.pth"), "--pi_cache",
           str(pi_root)]
    # TGD's own recipe starts the student from a trained student; here the CE-only student of the same seed, its
    # last epoch (no test-selected weights), and KD is warm-started the same way to compare with.
    runs = [("TGD", SCRATCH, tgd), ("KD", WARM, STUDENTS["KD"]), ("TGD", WARM, tgd)]
    for i, (name, init, flags) in enumerate(runs, 1):
        epochs = budget.student_epochs if init == SCRATCH else budget.warm_epochs
        banner(f"5/5 student {i}/{len(runs)}: {STUDENT} with {name} from {init} ({epochs} epochs)")
        for seed in budget.seeds:
            start = [] if init == SCRATCH else [
                "--init_s", str(student_folder(out, "CE only", seed) / f"{STUDENT}_last.pth")]
            folder, summary, secs = train_one_student(out, name + ("" if init == SCRATCH else ", warm-started"), seed,
                                                      budget, teacher + flags + start, epochs)
            rows.append(row(STUDENT, "student", name, summary, secs, folder, seed, init=init))
    return rows, window_note


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


def label(r: Dict[str, Any]) -> str:
    """A row's method as the tables show it: warm-started students say so."""
    return r["method"] + ("" if r["init"] == SCRATCH else ", warm-started")


def groups_of(rows: List[Dict[str, Any]]) -> Dict[Tuple[str, str, str], List[Dict[str, Any]]]:
    """``(model, role, label)`` -> its runs (one per seed), first seen first."""
    groups: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["role"], label(r)), []).append(r)
    return groups


def settings(r: Dict[str, Any]) -> List[str]:
    """A row's epochs, initialisation, teacher(s) and loss, as its run recorded them (config.yaml)."""
    cfg = r["config"]
    teachers = [cfg["model_t"]] if cfg.get("model_t") else []
    teachers += [f"{cfg['model_t2']} on image PIs"] if cfg.get("model_t2") else []
    return [str(cfg["epochs"]), r["init"], ", ".join(teachers) or "-", cfg.get("loss") or "CE"]


def near_chance(rows: List[Dict[str, Any]]) -> Optional[str]:
    """The note on a PI teacher under twice chance (best top-1 < 2 x 100 / classes), or None."""
    for r in (r for r in rows if r["role"] == "PI teacher"):
        chance = 100.0 / r["config"]["num_classes"]
        if r["best"] < 2 * chance:
            return (f"‡ The PI teacher reached only {r['best']:.1f} % on the image PIs (chance {chance:.0f} %): "
                    f"TGD's second teacher is little better than chance here.")
    return None


def tgd_scratch_note(rows: List[Dict[str, Any]]) -> Optional[str]:
    """Why TGD from scratch starts far behind KD: its recorded CE weight and KL strength against KD's."""
    tgd = next((r["config"] for r in rows if r["method"] == "TGD" and r["init"] == SCRATCH), None)
    kd = next((r["config"] for r in rows if r["method"] == BASELINE and r["init"] == SCRATCH), None)
    if tgd is None or kd is None:
        return None
    classes = tgd["num_classes"]
    divisor = {"mean": "batch x classes", "batchmean": "batch"}

    def strength(cfg: Dict[str, Any], weight: float) -> float:  # the KL's weight per batch-summed KL
        return weight / (classes if cfg.get("kd_reduction", "batchmean") == "mean" else 1)

    ratio = strength(kd, kd["alpha"]) / strength(tgd, tgd["alpha"] * tgd["tgd_alpha"])
    temps = f"T = {kd['kd_T']:g} for both" if tgd["kd_T"] == kd["kd_T"] else f"T {tgd['kd_T']:g}, KD's {kd['kd_T']:g}"
    return (f"TGD from scratch: its loss weights CE by {tgd['gamma']:g} (KD: {kd['gamma']:g}) and divides the KL by "
            f"{divisor[tgd['kd_reduction']]} ({classes} classes; KD by the "
            f"{divisor[kd.get('kd_reduction', 'batchmean')]}), so its image-teacher KL term, weighted "
            f"{tgd['alpha']:g} x {tgd['tgd_alpha']:g}, is {ratio:.1f} times weaker than KD's ({temps}): it starts "
            f"far behind. TGD's own recipe starts the student from "
            f"a trained student (the official README's wrn161_Student): the warm-started rows.")


def results_table(rows: List[Dict[str, Any]]) -> str:
    """One row per network, method and initialisation (first seen first): top-1 mean ± std over its seeds, the
    topology columns, time and the row's settings; a method whose topology term was inactive (`inactive_note`)
    is marked, TGD's rows too when the PI teacher stayed near chance, with notes under the table."""
    lines = table_head(["model", "role", "method", "seeds", "best top-1 (%, test-selected)", "last top-1 (%)"]
                       + [t for _, t in TOPO_COLUMNS] + ["time (s)", "epochs", "init", "teacher(s)",
                                                         "loss (as recorded)"], 3)
    chance = near_chance(rows)
    notes = []
    for (model, role, method), runs in groups_of(rows).items():
        note = inactive_note(method, runs)
        notes += [note] if note else []
        mark = " (inactive topology term †)" if note else ""
        mark += " (PI teacher near chance ‡)" if chance and runs[0]["method"] == "TGD" else ""
        topo = [mean_std([r["topo"].get(k) for r in runs], 0) for k, _ in TOPO_COLUMNS]
        lines.append(f"| {model} | {role} | {method}{mark} | {len(runs)} | "
                     f"{mean_std([r['best'] for r in runs])} | {mean_std([r['last'] for r in runs])} | "
                     + " | ".join(topo + [f"{sum(r['seconds'] for r in runs):.0f}"] + settings(runs[0])) + " |")
    notes += [n for n in (chance, tgd_scratch_note(rows)) if n]
    return "\n".join(lines + ([""] + notes if notes else []))


def same_setting(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Two runs share seed, data, training fraction, teacher and initialisation (what pairing needs)."""
    keys = ("seed", "dataset", "train_fraction", "image_size", "path_t")
    return a["init"] == b["init"] and all(a["config"].get(k) == b["config"].get(k) for k in keys)


def other_differences(pairs: Sequence[Tuple[Dict[str, Any], Dict[str, Any]]]) -> str:
    """The settings, besides the method's own options, in which paired runs' recorded identities differ (their
    names, comma-joined; ``-`` for none): what a paired difference measures beyond the method itself."""
    from tools.collect_results import TRIAL_OPTIONS, method_options

    own = method_options() | set(TRIAL_OPTIONS)

    def shared(r: Dict[str, Any]) -> Dict[str, Any]:
        identity = r["config"].get("identity") or {}
        return {k: v for part in (identity.get("options") or {}, identity.get("inputs") or {})
                for k, v in part.items() if k not in own}

    names = {k for r, b in pairs for mine, theirs in [(shared(r), shared(b))]
             for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
    return ", ".join(sorted(names)) or "-"


def paired_table(rows: List[Dict[str, Any]]) -> str:
    """Each student method minus `BASELINE` of the same initialisation, paired by seed (`tools.paired`): the mean
    difference of best and last top-1 and of each topology column, its 95 % t interval and paired p-value."""
    groups = [runs for (_, role, _), runs in groups_of(rows).items() if role == "student"]
    bases = [runs for runs in groups if runs[0]["method"] == BASELINE]
    lines = table_head(["method", "minus", "seeds", "best top-1 (test-selected)", "last top-1"]
                       + [t for _, t in TOPO_COLUMNS] + ["also differs in"], 2)
    for runs in groups:
        for base in bases:
            pairs = [(r, b) for r in runs for b in base if r is not b and same_setting(r, b)]
            if not pairs:
                continue

            def diff(get: Callable[[Dict[str, Any]], Optional[float]], digits: int) -> str:
                values = [(get(r), get(b)) for r, b in pairs]
                if any(x is None or y is None for x, y in values):
                    return "-"
                return paired_difference(*zip(*values)).text(digits)

            cells = [diff(lambda r: r["best"], 2), diff(lambda r: r["last"], 2)]
            cells += [diff(lambda r, k=k: r["topo"].get(k), 4) for k, _ in TOPO_COLUMNS] + [other_differences(pairs)]
            lines.append(f"| {label(runs[0])} | {label(base[0])} | {len(pairs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_table(rows: List[Dict[str, Any]]) -> str:
    """Every student run on its own line: method, seed, best / last top-1, the topology values."""
    lines = table_head(["method", "seed", "best top-1 (%)", "last top-1 (%)"] + [t for _, t in TOPO_COLUMNS], 1)
    for r in rows:
        if r["seed"] is not None:
            topo = [f"{r['topo'][k]:.4g}" if k in r["topo"] else "-" for k, _ in TOPO_COLUMNS]
            lines.append(f"| {label(r)} | {r['seed']} | {r['best']:.2f} | {r['last']:.2f} | " + " | ".join(topo)
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
        rows, window_note = run(out, budget)
        from tools import figures  # matplotlib, on first use

        written = figures.quickstart_figures(out)
        text = (f"# topkd quickstart on digits{' (--fast smoke run)' if args.fast else ''}\n\n"
                f"Teacher: all {TRAIN_SPLIT} training images; students: a fixed stratified {budget.train_fraction:g} "
                f"of them, seeds {', '.join(map(str, budget.seeds))} (mean ± sample std over the seeds). Topology "
                f"columns: the student's embedding against the teacher's on 4 fixed test batches of 64 (H0 distances "
                f"with each cloud divided by its diameter, persistence-image MSE, linear CKA; engine.topo_eval). "
                f"Best top-1 is test-selected (the epoch of highest test top-1); last is the final epoch. Warm-started "
                f"students start (train_student.py --init_s) from the {WARM}: {STUDENT}_last.pth, no test-selected "
                f"weights.\n\n{results_table(rows)}\n\n{window_note}\n\nPaired differences (method minus "
                f"{BASELINE} of the same initialisation, over the seeds both ran; the same seed shares the data "
                f"fraction, teacher, initial weights and batch order): mean [95 % t interval], paired t-test p "
                f"(tools/paired.py); \"CI holds 0\": no difference shown at 95 %; \"also differs in\": the settings "
                f"beyond the method's own options in which the runs' recorded identities differ (TGD trains with its "
                f"own recipe).\n\n{paired_table(rows)}\n\n"
                f"Per seed:\n\n{seed_table(rows)}\n\nTotal time: "
                f"{time.perf_counter() - start:.0f} s (figures included). Figures: "
                f"{', '.join(f.name for f in written) or 'none'}.\n")
        (out / "results.md").write_text(text)
    banner("results")
    print(text)
    print(f"run folder: {out}")
    return out


if __name__ == "__main__":
    run_cli(main)
