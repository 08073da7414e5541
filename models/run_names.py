"""Run-folder names of the official TopKD and RepDistiller code (which keep a run's settings only there) and
ours (with the run's identity hash, ``-<8 hex>``), read back into their settings (`_layouts`); and finding a
teacher's run by them when no exact ``--path_t`` is typed (the official README runs its stages so)."""
import contextlib
import functools
import glob
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from datasets import dataset_names
from topkd_io import TopKDError, load_checkpoint, read_yaml

from .registry import ARCH_ALIASES

log = logging.getLogger(__name__)

DEFAULT_ROOT = "save_t_models"
_V = r"[^_]+"  # one value (numbers, 'None', 'True')
_IDENTITY_SUFFIX = re.compile(r"^(?P<name>.+)-(?P<hash>[0-9a-f]{8}|pending)$")  # "-pending": a planned run
_FLOATS = ("kd_T", "lr", "weight_decay", "gamma", "alpha", "beta", "delta")
_INTS = ("epochs", "batch_size", "tda_layer_t", "tda_layer_s")


@functools.lru_cache(maxsize=8)
def _layouts(datasets: Tuple[str, ...]) -> Dict[str, "re.Pattern[str]"]:
    """The layouts' patterns for these data-set names (the registered ones; ``_pi``: TGD's PI teachers)."""
    names = sorted(datasets, key=len, reverse=True)  # longest first: cifar100 before cifar10
    ds = r"(?P<dataset>(?:" + "|".join(map(re.escape, names)) + r")(?:_pi)?)"
    return {
        "topkd_student": re.compile(
            rf"^T:(?P<teacher>.+?)_S:(?P<arch>.+?)_{ds}_(?:(?P<batch_size>\d+)_)?KD:(?P<distill>.+?)_T:(?P<kd_T>{_V})_"
            rf"epochs_(?P<epochs>\d+)_lr_(?P<lr>{_V})_decay_(?P<weight_decay>{_V})_r:(?P<gamma>{_V})_"
            rf"a:(?P<alpha>{_V})_b:(?P<beta>{_V})"
            rf"(?:_d:(?P<delta>{_V})_tda_layer_t:(?P<tda_layer_t>{_V})_tda_layer_s:(?P<tda_layer_s>{_V})_"
            rf"dim_(?P<dim>{_V})_(?P<operator>{_V}))?_trial_(?P<trial>\w+)$"),
        "repdistiller_student": re.compile(
            rf"^S:(?P<arch>.+?)_T:(?P<teacher>.+?)_{ds}_(?P<distill>.+?)_r:(?P<gamma>{_V})_a:(?P<alpha>{_V})_"
            rf"b:(?P<beta>{_V})_(?P<trial>\w+)$"),
        "ours_student": re.compile(rf"^S-(?P<arch>.+?)_T-(?P<teacher>.+?)_{ds}_(?P<rest>.*?)(?:_trial_(?P<trial>\w+))?$"),
        "topkd_teacher": re.compile(
            rf"^(?P<arch>.+?)_{ds}_epoch_(?P<epochs>\d+)_bs_(?P<batch_size>\d+)_lr_(?P<lr>{_V})_"
            rf"decay_(?P<weight_decay>{_V})_trial_(?P<trial>\w+)$"),
        "teacher": re.compile(rf"^(?P<arch>.+?)_{ds}_lr_(?P<lr>{_V})_decay_(?P<weight_decay>{_V})_trial_(?P<trial>\w+)$"),
        "repdistiller_vanilla": re.compile(r"^(?P<arch>.+)_vanilla$"),
    }


def _value(key: str, text: Optional[str]) -> Any:
    if text is None or text == "None":
        return None
    try:
        return float(text) if key in _FLOATS else int(text) if key in _INTS else text
    except ValueError:
        return text


@dataclass(frozen=True)
class RunName:
    """What a run-folder name says: ``layout`` (which of `_layouts`), ``arch`` (the trained network), ``teacher``
    (None for teachers), ``settings`` (the other fields, typed like our config.yaml keys)."""

    layout: str
    arch: str
    dataset: Optional[str] = None
    teacher: Optional[str] = None
    trial: Optional[str] = None
    settings: Dict[str, Any] = field(default_factory=dict)
    identity_hash: Optional[str] = None

    @property
    def is_student(self) -> bool:
        return self.teacher is not None

    def as_config(self) -> Dict[str, Any]:
        """The settings under our config.yaml keys (and ``method: topkd`` for a TopKD topology run)."""
        cfg = {k: v for k, v in self.settings.items() if v is not None}
        cfg.update(dict(model_s=self.arch, model_t=self.teacher) if self.is_student else dict(model=self.arch))
        if self.is_student and cfg.get("delta"):
            cfg.setdefault("method", "topkd")
        cfg.update({k: v for k, v in (("dataset", self.dataset), ("trial", self.trial)) if v is not None})
        return cfg


def parse_run_name(name: str) -> Optional[RunName]:
    """A run folder's base name -> RunName, or None when it follows none of the layouts."""
    suffix = _IDENTITY_SUFFIX.match(name)
    ident = None
    if suffix and not name.startswith(("T:", "S:")):  # the official names never carry one
        name, ident = suffix.group("name"), suffix.group("hash")
    for layout, pattern in _layouts(tuple(dataset_names())).items():
        match = pattern.match(name)
        if match:
            fields = match.groupdict()
            arch, teacher = fields.pop("arch"), fields.pop("teacher", None)
            dataset, trial = fields.pop("dataset", None), fields.pop("trial", None)
            settings = {k: _value(k, v) for k, v in fields.items() if k != "rest"}
            if fields.get("rest"):
                settings["rest"] = fields["rest"]
            return RunName(layout, arch, dataset, teacher, trial, settings, ident)
    return None


def parse_checkpoint_path(path: Any) -> Optional[RunName]:
    """The RunName of the folder holding a checkpoint file (None when its name follows no layout)."""
    return parse_run_name(os.path.basename(os.path.dirname(os.path.abspath(os.fspath(path)))))


def _listing(paths: List[str], limit: int = 6) -> str:
    return ", ".join(paths[:limit]) + (f" (+{len(paths) - limit} more)" if len(paths) > limit else "")


def teacher_record(folder: str) -> Optional[dict]:
    """``{"arch", "dataset", "trial", "input", "finished", "checkpoint"}`` of a teacher run folder, or None
    when the folder holds no teacher (no ``<arch>_best.pth``, a student, or a name of no known layout)."""
    best = sorted(glob.glob(os.path.join(glob.escape(folder), "*_best.pth")))
    cfg = {}
    if best and os.path.isfile(os.path.join(folder, "config.yaml")):
        with contextlib.suppress(ValueError):
            cfg = read_yaml(os.path.join(folder, "config.yaml"), "run configuration") or {}
    if not best or cfg.get("model_s") or cfg.get("path_t"):  # no checkpoint, or a student
        return None
    if cfg.get("model"):
        arch, finished = str(cfg["model"]), False
        with contextlib.suppress(ValueError, OSError):
            last = load_checkpoint(os.path.join(folder, f"{arch}_last.pth"))
            finished = int(last.get("epoch") or 0) >= int(cfg.get("epochs") or 0)
        return {"arch": arch, "dataset": str(cfg.get("dataset")), "trial": str(cfg.get("trial", 0)),
                "input": str(cfg.get("input", "image")), "finished": finished,
                "checkpoint": os.path.join(folder, f"{arch}_best.pth")}
    run = parse_run_name(os.path.basename(os.path.normpath(folder)))
    if run is None or run.is_student:
        return None
    checkpoint = os.path.join(folder, f"{run.arch}_best.pth")
    dataset, pi = run.dataset or "", (run.dataset or "").endswith("_pi")
    return {"arch": run.arch, "dataset": dataset[:-3] if pi else dataset, "trial": str(run.trial),
            "input": "pi" if pi else "image", "finished": True,
            "checkpoint": checkpoint if os.path.isfile(checkpoint) else best[0]}


def resolve_teacher(path_t: Optional[str], model_t: Optional[str] = None, dataset: Optional[str] = None,
                    trial: Optional[int] = None, root: str = DEFAULT_ROOT, flag: str = "--path_t") -> str:
    """The teacher checkpoint to use -> an existing file: ``path_t`` naming a file; a run folder (its
    ``<arch>_best.pth``; a folder of run folders is searched); a missing file whose folder name lacks our identity
    hash (the official student lines name ``save_t_models/<name>/<arch>_best.pth``): the same file in the one
    folder ``<name>-<hash>``; no ``path_t``: the one finished teacher under ``root`` of ``model_t``, ``dataset``
    and ``trial`` when given. The choice is logged; several candidates are an error."""
    if path_t and os.path.isfile(path_t):
        return path_t
    if path_t and not os.path.isdir(path_t):
        folder, base = os.path.split(os.path.normpath(path_t))
        siblings = [p for p in sorted(glob.glob(os.path.join(glob.escape(folder or ".") + "-*", glob.escape(base))))
                    if getattr(parse_checkpoint_path(p), "identity_hash", None)]
        if len(siblings) > 1:
            raise TopKDError(f"{flag} {path_t} not found, and several run folders of that name hold one: "
                             f"{_listing(siblings)}; pass one of them")
        if not siblings:
            raise FileNotFoundError(f"teacher checkpoint {path_t} not found; check {flag}")
        log.info(f"teacher: {flag} {path_t} not found; took {siblings[0]} (the run folder of that name with its "
                 f"identity hash)")
        return siblings[0]
    if path_t:  # a folder
        direct = sorted(glob.glob(os.path.join(glob.escape(path_t), f"{model_t or '*'}_best.pth")))
        if len(direct) == 1:
            return direct[0]
        root = path_t
    found, want = [], ARCH_ALIASES.get(model_t, model_t)  # the matching finished image teachers directly under root
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        rec = teacher_record(os.path.join(root, name))
        if (rec is not None and rec["input"] == "image" and rec["finished"] and dataset in (None, rec["dataset"])
                and want in (None, ARCH_ALIASES.get(rec["arch"], rec["arch"]))
                and (trial is None or rec["trial"] == str(trial))):
            found.append(rec["checkpoint"])
    what = " ".join(p for p in (model_t or "", f"on {dataset}" if dataset else "",
                                f"trial {trial}" if trial is not None else "") if p) or "of any kind"
    if len(found) == 1:
        log.info(f"teacher: {flag} not given; took {found[0]} (the one finished teacher {what} under {root})")
        return found[0]
    if not found:
        raise FileNotFoundError(f"no finished teacher {what} under {root}; train one with train_teacher.py, or pass "
                                f"{flag} (a checkpoint, a run folder or a folder of run folders)")
    raise TopKDError(f"several finished teachers {what} under {root}: {_listing(found)}; pass {flag} (or "
                     f"--model_t / --teacher_trial to choose)")
