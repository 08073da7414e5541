"""Checkpoints: atomic writes, loads with clear errors, and rebuilding a trained model from ours or the
official ones.

Our checkpoint is a dict: ``model`` (state dict with official-compatible keys), ``arch``,
``num_classes``, ``dataset``, ``epoch`` (epochs completed), ``best_acc``, ``best_epoch``, ``optimizer``,
``scheduler``, ``scaler``, ``rng``, ``config`` and ``distiller`` (the distiller's own trainable extras:
its state dict without the ``teacher.`` / ``student.`` entries). Official ones are ``{'model': sd, ...}``
or a bare state dict; their architecture comes from the caller or from the run-folder name.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from .files import temp_beside
from .serialization import UnsafeCheckpointError, read_error_reason, safe_load

# Entries of a state dict that hold the classifier, most specific first (the class count is its rows).
CLASSIFIER_KEYS = ("fc.weight", "linear.weight", "classifier.weight", "classifier.1.weight",
                   "classifier.0.weight")
# Official run folders: <arch>_<dataset>_lr_<lr>_decay_<wd>_trial_<n>; RepDistiller: <arch>_vanilla.
_RUN_FOLDER = re.compile(r"^(?P<arch>.+)_(?P<dataset>[A-Za-z0-9]+)_lr_[^_]+_decay_[^_]+_trial_\w+$")
_VANILLA_FOLDER = re.compile(r"^(?P<arch>.+)_vanilla$")
_FILE_NAME = re.compile(r"^(?P<arch>.+)_(best|last)$")


def save_checkpoint(state: Dict[str, Any], path: str) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then os.replace.

    A failure while writing leaves any previous file at ``path`` untouched; an OSError (full disk, ...)
    is raised again naming ``path``. The file gets the umask's mode (0644 by default); temporaries
    left by an earlier killed write of ``path`` are removed first (`engine.files.temp_beside`).
    """
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno:
            raise OSError(exc.errno, f"cannot write checkpoint ({exc.strerror})", path) from None
        raise


def load_checkpoint(path: str, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint (tensors and plain containers only) -> dict.

    FileNotFoundError when ``path`` is missing; ValueError when the file cannot be read as a checkpoint.
    A bare state dict is returned as is.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found; check the path")
    try:
        ckpt = safe_load(path, map_location=map_location)
    except UnsafeCheckpointError:
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise ValueError(f"checkpoint {path} cannot be read ({read_error_reason(exc)}); re-save it or use "
                         f"another checkpoint (e.g. <arch>_last.pth of the same run)") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    return ckpt


def model_state(ckpt: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The network's state dict inside a checkpoint (ours, official, or bare), ``module.`` prefixes removed."""
    sd = ckpt.get("model", ckpt) if isinstance(ckpt.get("model", None), dict) else ckpt
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("checkpoint has no model state dict (expected {'model': state_dict} or a state dict)")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def infer_num_classes(state_dict: Dict[str, torch.Tensor]) -> int:
    """Rows of the classifier weight (by name, else the last 2-D weight)."""
    for suffix in CLASSIFIER_KEYS:
        hits = [k for k in state_dict if k == suffix or k.endswith("." + suffix)]
        if hits:
            return int(state_dict[hits[-1]].shape[0])
    matrices = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    if not matrices:
        raise ValueError("cannot infer the number of classes: no classifier weight in the checkpoint; "
                         "pass num_classes")
    return int(matrices[-1].shape[0])


def arch_candidates(path: str) -> List[str]:
    """Architecture names suggested by a checkpoint's file and folder names, most specific first."""
    stem = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    out = []
    for pattern, text in ((_RUN_FOLDER, folder), (_VANILLA_FOLDER, folder), (_FILE_NAME, stem)):
        match = pattern.match(text)
        if match:
            out.append(match.group("arch"))
    return out


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


def _model_registry():
    from models import model_dict  # imported late: engine must not need models to load plain checkpoints

    return model_dict


def _resolve_arch(path: str, ckpt: Dict[str, Any], arch: Optional[str], names: Iterable[str]) -> str:
    names = list(names)
    stored = ckpt.get("arch") if isinstance(ckpt.get("arch"), str) else None
    if arch is not None:
        if arch not in names:
            raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(sorted(names))}")
        if stored is not None and stored != arch:
            raise ValueError(f"checkpoint {path} holds a {stored}, but arch {arch} was requested")
        return arch
    if stored is not None:
        if stored not in names:
            raise ValueError(f"checkpoint {path} names an unknown architecture {stored!r}")
        return stored
    for name in arch_candidates(path):
        if name in names:
            return name
    raise ValueError(f"cannot tell the architecture of {path} (no 'arch' entry, folder name not "
                     f"<arch>_<dataset>_lr_..._trial_N); pass the architecture explicitly (e.g. --model_t)")


def load_model(path: str, arch: Optional[str] = None, num_classes: Optional[int] = None,
               map_location: Any = "cpu") -> Tuple[nn.Module, Dict[str, Any]]:
    """Rebuild a trained network from ours or an official checkpoint -> ``(model in eval mode, ckpt)``.

    arch: architecture name of ``models.model_dict`` (needed for official checkpoints whose folder name
    does not tell). num_classes: expected class count (inferred from the classifier when None).
    Raises ValueError when the architecture or the class count does not match, naming which.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    sd = model_state(ckpt)
    registry = _model_registry()
    arch = _resolve_arch(path, ckpt, arch, registry)
    found_classes = int(ckpt["num_classes"]) if isinstance(ckpt.get("num_classes"), int) else infer_num_classes(sd)
    if num_classes is not None and int(num_classes) != found_classes:
        raise ValueError(f"checkpoint {path} has {found_classes} classes but {num_classes} were requested "
                         f"(different data set?)")
    kwargs = {"num_classes": found_classes}
    if isinstance(ckpt.get("in_channels"), int) and ckpt["in_channels"] != 3:
        kwargs["in_channels"] = ckpt["in_channels"]
    model = registry[arch](**kwargs)
    diffs = state_dict_differences(model.state_dict(), sd)
    if diffs:
        raise ValueError(f"checkpoint {path} does not fit {arch} with {found_classes} classes "
                         f"(another architecture?): {'; '.join(diffs)}")
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, ckpt
