"""Run-folder names of the official TopKD and RepDistiller code, and ours, read back into their settings.

The official codes keep a run's settings only in its folder name (their ``*_last.pth`` pickles an
``argparse.Namespace``, which the safe loader refuses). `_layouts` holds the patterns: TopKD students with and
without the topology term (``T:<t>_S:<s>_<dataset>_..._trial_<n>``), RepDistiller students
(``S:<s>_T:<t>_<dataset>_<distill>_r:..._<n>``), TopKD teachers (``<arch>_<dataset>_epoch_<e>_bs_...``),
RepDistiller's and our teachers (``<arch>_<dataset>_lr_<lr>_decay_<wd>_trial_<n>``), RepDistiller's released
``<arch>_vanilla`` and our students (``S-<s>_T-<t>_<dataset>_..._trial_<n>``). Our run folders append the run's
identity hash (``-<8 hex>``), read into ``RunName.identity_hash``.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from datasets import dataset_names

_V = r"[^_]+"  # one value (numbers, 'None', 'True')


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


# "-<8 hex>" (or "-pending" for a planned run) at the end of one of our folder names
_IDENTITY_SUFFIX = re.compile(r"^(?P<name>.+)-(?P<hash>[0-9a-f]{8}|pending)$")
_FLOATS = ("kd_T", "lr", "weight_decay", "gamma", "alpha", "beta", "delta")
_INTS = ("epochs", "batch_size", "tda_layer_t", "tda_layer_s")


def _value(key: str, text: Optional[str]) -> Any:
    if text is None or text == "None":
        return None
    try:
        return float(text) if key in _FLOATS else int(text) if key in _INTS else text
    except ValueError:
        return text


@dataclass(frozen=True)
class RunName:
    """What a run-folder name says. ``layout``: which of the layouts above; ``arch``: the trained network;
    ``teacher``: its teacher (None for teachers); ``settings``: the remaining fields, typed like our
    config.yaml keys (``distill``, ``gamma``, ``alpha``, ``beta``, ``delta``, ``kd_T``, ``lr``, ``epochs``,
    ``batch_size``, ``operator``, ``dim``, ...)."""

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
        """The settings under our config.yaml keys (``model_s``/``model_t`` or ``model``, ``dataset``, ``trial``,
        and for a TopKD topology run ``method: topkd``)."""
        cfg: Dict[str, Any] = {k: v for k, v in self.settings.items() if v is not None}
        if self.is_student:
            cfg.update(model_s=self.arch, model_t=self.teacher)
            if cfg.get("delta"):
                cfg.setdefault("method", "topkd")
        else:
            cfg["model"] = self.arch
        if self.dataset is not None:
            cfg["dataset"] = self.dataset
        if self.trial is not None:
            cfg["trial"] = self.trial
        return cfg


def parse_run_name(name: str) -> Optional[RunName]:
    """A run folder's base name -> RunName, or None when it follows none of the layouts. The data-set part
    is one of the registered data sets (``datasets.dataset_names()``)."""
    suffix = _IDENTITY_SUFFIX.match(name)
    ident = suffix.group("hash") if suffix else None
    if suffix and not name.startswith(("T:", "S:")):  # the official names never carry one
        name = suffix.group("name")
    else:
        ident = None
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
    folder = os.path.basename(os.path.dirname(os.path.abspath(os.fspath(path))))
    return parse_run_name(folder)
