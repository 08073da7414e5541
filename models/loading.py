"""Rebuilding a trained network from a checkpoint: ours (``{'model', 'arch', 'num_classes', ...}``) or the
official TopKD / RepDistiller ones (``{'model': state_dict, ...}`` or a bare state dict), whose architecture
comes from the caller or from the run-folder name.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional

import torch
from torch import nn

from topkd_io import TopKDError, load_checkpoint

from .pretrained import arch_from_torchvision_file
from .registry import ARCH_ALIASES, model_dict, resolve_arch
from .run_names import parse_checkpoint_path
from .tgd_released import is_tgd_state_dict, tgd_to_wrn_state_dict, tgd_wrn_arch

# Entries of a state dict that hold the classifier, most specific first (the class count is its rows).
CLASSIFIER_KEYS = ("fc.weight", "linear.weight", "classifier.weight", "classifier.1.weight",
                   "classifier.0.weight")
# Checkpoint file names <arch>_best.pth / <arch>_last.pth (run folders: models.run_names).
_FILE_NAME = re.compile(r"^(?P<arch>.+)_(best|last)$")


class LoadedModel(NamedTuple):
    """What `load_model` returns; unpacks as ``model, arch, ckpt = load_model(...)``."""

    model: nn.Module  # the network in eval mode
    arch: str  # the resolved architecture name (a key of ``models.model_dict``)
    ckpt: Dict[str, Any]  # the checkpoint dict as read


def model_state(ckpt: Dict[str, Any], path: str = "") -> Dict[str, torch.Tensor]:
    """The network's state dict inside a checkpoint (ours, official, or bare), ``module.`` prefixes removed."""
    sd = ckpt.get("model", ckpt) if isinstance(ckpt.get("model", None), dict) else ckpt
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TopKDError(f"checkpoint {path} holds no network weights (expected {{'model': ...}}, "
                         f"{{'model_state_dict': ...}} or a state dict)")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def state_dict_differences(expected: Dict[str, torch.Tensor], found: Dict[str, torch.Tensor],
                           limit: int = 3) -> List[str]:
    """Human-readable differences of keys and shapes (the first ``limit`` of each kind)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}"
              for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    out = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape (checkpoint vs model)", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            out.append(f"{label}: {', '.join(items[:limit])}{more}")
    return out


def check_finite_weights(state_dict: Dict[str, torch.Tensor], path: str, flag: str = "") -> None:
    """ValueError naming ``path`` (and ``flag``) when a floating-point tensor of the state dict holds NaN or
    infinity: such a network cannot be trained from or distilled from (every loss would be NaN at step 1)."""
    bad = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        who = f"{flag} " if flag else ""
        raise TopKDError(f"{who}checkpoint {path} holds NaN or infinite values in {', '.join(bad[:3])}{more}; "
                         f"it comes from a diverged or damaged run: use another checkpoint (e.g. an earlier "
                         f"<arch>_best.pth)")


def infer_num_classes(state_dict: Dict[str, torch.Tensor]) -> int:
    """Rows of the classifier weight (by name, else the last 2-D weight)."""
    for suffix in CLASSIFIER_KEYS:
        hits = [k for k in state_dict if k == suffix or k.endswith("." + suffix)]
        if hits:
            return int(state_dict[hits[-1]].shape[0])
    matrices = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    if not matrices:
        raise TopKDError("cannot infer the number of classes: no classifier weight in the checkpoint; "
                         "pass num_classes")
    return int(matrices[-1].shape[0])


def arch_candidates(path: str) -> List[str]:
    """Architecture names suggested by a checkpoint's file and folder names, most specific first (run
    folders, ``<arch>_best.pth``, torchvision's ``resnet34-b627a593.pth``)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    run = parse_checkpoint_path(path)  # official TopKD / RepDistiller / our run-folder layouts
    out = [run.arch] if run is not None else []
    match = _FILE_NAME.match(stem)
    if match and match.group("arch") not in out:
        out.append(match.group("arch"))
    out += [a for a in [arch_from_torchvision_file(path)] if a and a not in out]
    return out


def _resolve_arch(path: str, ckpt: Dict[str, Any], arch: Optional[str], names: Iterable[str]) -> str:
    names = list(names)
    stored = ckpt.get("arch") if isinstance(ckpt.get("arch"), str) else None
    if arch is not None:
        arch = resolve_arch(arch)  # official aliases (MobileNetV2, ShuffleV1, ...) -> registry name
        if stored is not None and stored != arch:
            raise TopKDError(f"checkpoint {path} holds a {stored}, but arch {arch} was requested")
        return arch
    if stored is not None:
        if stored not in names:
            raise TopKDError(f"checkpoint {path} names an unknown architecture {stored!r}")
        return stored
    for name in arch_candidates(path):
        if name in names or name in ARCH_ALIASES:
            return ARCH_ALIASES.get(name, name)
    raise TopKDError(f"cannot tell the architecture of {path} (no 'arch' entry, folder name not "
                     f"<arch>_<dataset>_lr_..._trial_N); pass the architecture explicitly (e.g. --model_t)")


def read_weights(path: str, map_location: Any = "cpu"):
    """-> ``(checkpoint dict, state dict in our key names)`` of ours, an official one or TGD's releases (with
    ``arch``/``in_channels`` added for those)."""
    ckpt = load_checkpoint(path, map_location=map_location)
    sd = model_state(ckpt["model_state_dict"] if isinstance(ckpt.get("model_state_dict"), dict) else ckpt, path)
    if is_tgd_state_dict(sd):  # TGD's releases: its own WideResNet key names
        tgd_arch, options = tgd_wrn_arch(sd)
        ckpt = dict(ckpt, arch=tgd_arch, in_channels=options.get("in_channels", 3))
        sd = tgd_to_wrn_state_dict(sd)
    return ckpt, sd


def checkpoint_arch(path: str, arch: Optional[str] = None) -> str:
    """The architecture `load_model` would build for ``path`` (given, stored, or from the file / folder name),
    without building it; ValueError as `load_model`."""
    ckpt, _ = read_weights(path)
    return _resolve_arch(path, ckpt, arch, model_dict)


def load_model(path: str, arch: Optional[str] = None, num_classes: Optional[int] = None,
               map_location: Any = "cpu", in_channels: Optional[int] = None) -> LoadedModel:
    """Rebuild a trained network from ours or an official checkpoint -> ``LoadedModel(model in eval mode, arch,
    ckpt)``. ``arch``: given, else stored, else read from the run-folder / file name; ``num_classes`` and
    ``in_channels``, when given, must match the checkpoint's (`TopKDError` naming what differs)."""
    ckpt, sd = read_weights(path, map_location)
    check_finite_weights(sd, path)
    arch = _resolve_arch(path, ckpt, arch, model_dict)
    found_classes = int(ckpt["num_classes"]) if isinstance(ckpt.get("num_classes"), int) else infer_num_classes(sd)
    if num_classes is not None and int(num_classes) != found_classes:
        raise TopKDError(f"checkpoint {path} has {found_classes} classes but {num_classes} were requested "
                         f"(different data set?)")
    kwargs = {"num_classes": found_classes}
    if isinstance(ckpt.get("in_channels"), int) and ckpt["in_channels"] != 3:
        kwargs["in_channels"] = ckpt["in_channels"]
    found_channels = kwargs.get("in_channels", 3)
    if in_channels is not None and int(in_channels) != found_channels:
        pi = " (a teacher trained on persistence images, train_teacher.py --input pi?)" \
            if found_channels == 2 * int(in_channels) else ""
        raise TopKDError(f"checkpoint {path} takes {found_channels}-channel inputs but the data have {in_channels} "
                         f"channels{pi}; pass a network trained on this data")
    model = model_dict[arch](**kwargs)
    diffs = state_dict_differences(model.state_dict(), sd)
    if diffs:
        raise TopKDError(f"checkpoint {path} does not fit {arch} with {found_classes} classes "
                         f"(another architecture?): {'; '.join(diffs)}")
    model.load_state_dict(sd, strict=True)
    model.eval()
    return LoadedModel(model, arch, ckpt)
