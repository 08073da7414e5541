"""Checkpoints: atomic writes and loads with clear errors. Rebuilding a trained network from a checkpoint
(ours or official) is `models.loading.load_model`.

Our checkpoint is a dict: ``model`` (state dict with official-compatible keys), ``arch``,
``num_classes``, ``dataset``, ``epoch`` (epochs completed), ``best_acc``, ``best_epoch``, ``optimizer``,
``scheduler``, ``scaler``, ``rng``, ``config`` and ``distiller`` (the distiller's own trainable extras:
its state dict without the ``teacher.`` / ``student.`` entries). Official ones are ``{'model': sd, ...}``
or a bare state dict.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import torch

from .files import temp_beside
from .serialization import UnsafeCheckpointError, read_error_reason, safe_load


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
