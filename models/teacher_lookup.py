"""Finding a teacher checkpoint when no exact path is typed (the official README runs its stages so).

`resolve_teacher` takes, in order: ``--path_t`` naming a file; a run folder (its ``<arch>_best.pth``; a folder of
run folders is searched); a missing file whose folder name lacks our identity hash (the official student lines
name ``save_t_models/<arch>_<dataset>_..._trial_<n>/<arch>_best.pth``): the same file in the one folder
``<that name>-<hash>``; no ``--path_t``: the one finished teacher under ``save_t_models`` of ``--model_t``,
``--dataset`` and ``--teacher_trial`` when given. The choice is logged; several candidates are an error.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
from typing import List, Optional, Tuple

from topkd_io import TopKDError, load_checkpoint, read_yaml

from .loading import checkpoint_arch
from .registry import ARCH_ALIASES
from .run_names import parse_run_name

log = logging.getLogger(__name__)

DEFAULT_ROOT = "save_t_models"


def _listing(paths: List[str], limit: int = 6) -> str:
    return ", ".join(paths[:limit]) + (f" (+{len(paths) - limit} more)" if len(paths) > limit else "")


def teacher_record(folder: str) -> Optional[dict]:
    """``{"arch", "dataset", "trial", "input", "finished", "checkpoint"}`` of a teacher run folder, or None
    when the folder holds no teacher (no ``<arch>_best.pth``, a student, or a name of no known layout)."""
    best = sorted(glob.glob(os.path.join(glob.escape(folder), "*_best.pth")))
    if not best:
        return None
    config, cfg = os.path.join(folder, "config.yaml"), {}
    if os.path.isfile(config):
        with contextlib.suppress(ValueError):
            cfg = read_yaml(config, "run configuration") or {}
    if cfg.get("model_s") or cfg.get("path_t"):
        return None  # a student
    if cfg.get("model"):
        arch, checkpoint = str(cfg["model"]), os.path.join(folder, f"{cfg['model']}_best.pth")
        last = os.path.join(folder, f"{arch}_last.pth")
        finished = False
        with contextlib.suppress(ValueError, OSError):
            finished = int(load_checkpoint(last).get("epoch") or 0) >= int(cfg.get("epochs") or 0)
        return {"arch": arch, "dataset": str(cfg.get("dataset")), "trial": str(cfg.get("trial", 0)),
                "input": str(cfg.get("input", "image")), "finished": finished, "checkpoint": checkpoint}
    run = parse_run_name(os.path.basename(os.path.normpath(folder)))
    if run is None or run.is_student:
        return None
    checkpoint = os.path.join(folder, f"{run.arch}_best.pth")
    if not os.path.isfile(checkpoint):
        checkpoint = best[0]
    dataset = run.dataset or ""
    return {"arch": run.arch, "dataset": dataset[:-3] if dataset.endswith("_pi") else dataset,
            "trial": str(run.trial), "input": "pi" if dataset.endswith("_pi") else "image", "finished": True,
            "checkpoint": checkpoint}


def find_teachers(root: str, arch: Optional[str] = None, dataset: Optional[str] = None,
                  trial: Optional[int] = None, finished_only: bool = True) -> List[str]:
    """Checkpoints of the teacher run folders directly under ``root`` that match (see the module docstring)."""
    if not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        rec = teacher_record(os.path.join(root, name))
        if rec is None or rec["input"] != "image" or (finished_only and not rec["finished"]):
            continue
        if arch is not None and ARCH_ALIASES.get(rec["arch"], rec["arch"]) != ARCH_ALIASES.get(arch, arch):
            continue
        if dataset is not None and rec["dataset"] != dataset:
            continue
        if trial is not None and rec["trial"] != str(trial):
            continue
        out.append(rec["checkpoint"])
    return out


def resolve_teacher(path_t: Optional[str], model_t: Optional[str] = None, dataset: Optional[str] = None,
                    trial: Optional[int] = None, root: str = DEFAULT_ROOT, flag: str = "--path_t") -> str:
    """The teacher checkpoint to use -> an existing file path (module docstring)."""
    if path_t and os.path.isfile(path_t):
        return path_t
    if path_t and os.path.isdir(path_t):
        direct = sorted(glob.glob(os.path.join(glob.escape(path_t), f"{model_t or '*'}_best.pth")))
        if len(direct) == 1:
            return direct[0]
        return _pick(find_teachers(path_t, model_t, dataset, trial), path_t, model_t, dataset, trial, flag)
    if path_t:
        folder, base = os.path.split(os.path.normpath(path_t))
        parent = os.path.dirname(folder)
        siblings = sorted(glob.glob(os.path.join(glob.escape(parent or "."), glob.escape(os.path.basename(folder))
                                                 + "-*", glob.escape(base))))
        siblings = [p for p in siblings if parse_run_name(os.path.basename(os.path.dirname(p))) is not None
                    and parse_run_name(os.path.basename(os.path.dirname(p))).identity_hash]
        if len(siblings) == 1:
            log.info(f"teacher: {flag} {path_t} not found; took {siblings[0]} (the run folder of that name with its "
                 f"identity hash)")
            return siblings[0]
        if len(siblings) > 1:
            raise TopKDError(f"{flag} {path_t} not found, and several run folders of that name hold one: "
                             f"{_listing(siblings)}; pass one of them")
        raise FileNotFoundError(f"teacher checkpoint {path_t} not found; check {flag}")
    return _pick(find_teachers(root, model_t, dataset, trial), root, model_t, dataset, trial, flag)


def _pick(found: List[str], root: str, arch, dataset, trial, flag: str) -> str:
    what = " ".join(p for p in (f"{arch}" if arch else "", f"on {dataset}" if dataset else "",
                                f"trial {trial}" if trial is not None else "") if p) or "of any kind"
    if len(found) == 1:
        log.info(f"teacher: {flag} not given; took {found[0]} (the one finished teacher {what} under {root})")
        return found[0]
    if not found:
        raise FileNotFoundError(f"no finished teacher {what} under {root}; train one with train_teacher.py, or pass "
                                f"{flag} (a checkpoint, a run folder or a folder of run folders)")
    raise TopKDError(f"several finished teachers {what} under {root}: {_listing(found)}; pass {flag} (or "
                     f"--model_t / --teacher_trial to choose)")


def teacher_and_arch(path_t: Optional[str], model_t: Optional[str], dataset: Optional[str], trial: Optional[int],
                     plan: bool = False) -> Tuple[Optional[str], Optional[str]]:
    """`resolve_teacher`, then the architecture read from the checkpoint -> ``(path, arch)``. Under ``--plan``
    a teacher that does not exist yet is left as given when both its path and architecture are (a planned run)."""
    try:
        path_t = resolve_teacher(path_t, model_t, dataset, trial)
    except (FileNotFoundError, TopKDError):
        if not (plan and path_t and model_t):
            raise
    if os.path.isfile(path_t):
        model_t = checkpoint_arch(path_t, model_t)
    return path_t, model_t
