"""Where a result comes from: code version, libraries, date, device, command line and input files.

`provenance(inputs, device)` -> a plain dict stored in ``config.yaml`` (``provenance:``) and, through the
configuration, in every checkpoint of the run; stages 2 and 3 store it in their manifest / checkpoint:

- ``commit`` and ``dirty``: ``git rev-parse HEAD`` and whether tracked files differ from it (``git status
  --porcelain --untracked-files=no``) in the project's checkout; both None outside a git checkout (no error);
- ``versions``: python, torch, torchvision, gudhi, numpy;
- ``date`` (local time, ISO 8601), ``host`` (host name), ``device`` (e.g. ``cpu`` or ``cuda:0 NVIDIA H200``,
  ``x4 processes`` under torchrun) and ``command`` (the command line, shell-quoted);
- ``inputs``: flag -> ``{"path": resolved absolute path, "sha256": ...}`` of every input file.
"""
from __future__ import annotations

import datetime
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from .identity import input_sha256

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_GIT: Optional[Dict[str, Any]] = None


def git_state(root: os.PathLike = PROJECT_ROOT) -> Dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding ``root`` (cached)."""
    global _GIT
    if _GIT is not None and os.fspath(root) == os.fspath(PROJECT_ROOT):
        return dict(_GIT)
    state: Dict[str, Any] = {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "-C", os.fspath(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            state["commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", os.fspath(root), "status", "--porcelain",
                                     "--untracked-files=no"], capture_output=True, text=True, timeout=30)
            state["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or not a checkout: recorded as unknown
    if os.fspath(root) == os.fspath(PROJECT_ROOT):
        _GIT = dict(state)
    return state


def versions() -> Dict[str, Optional[str]]:
    """Versions of python and the libraries that decide the numbers (None for one that is not installed)."""
    out: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "gudhi", "numpy"):
        try:
            module = __import__(name)
            out[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            out[name] = None
    return out


def describe_device(device: Any) -> str:
    """``cpu``, or ``cuda:0 <GPU name>``; with ``x<N> processes`` under torchrun."""
    text = str(device)
    if text.startswith("cuda"):
        try:
            index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
            text = f"cuda:{index} {torch.cuda.get_device_name(index)}"
        except Exception:  # no driver at this point: keep the plain name
            pass
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return text + (f" x{world} processes" if world > 1 else "")


def input_records(inputs: Mapping[str, Optional[str]]) -> Dict[str, Dict[str, Any]]:
    """flag -> ``{"path": absolute path, "sha256": ...}`` for the inputs that are set."""
    out = {}
    for flag, path in inputs.items():
        if path:
            resolved = os.path.abspath(os.fspath(path))
            out[flag] = {"path": resolved, "sha256": input_sha256(resolved)}
    return out


def provenance(inputs: Optional[Mapping[str, Optional[str]]] = None, device: Any = "cpu",
               **extra: Any) -> Dict[str, Any]:
    """The provenance record (module docstring); ``extra`` entries (e.g. ``teacher_top1``) are added."""
    record: Dict[str, Any] = dict(git_state())
    record.update(versions=versions(), date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  host=socket.gethostname(), device=describe_device(device),
                  command=shlex.join([os.path.basename(sys.executable)] + list(sys.argv)),
                  inputs=input_records(inputs or {}))
    record.update({k: v for k, v in extra.items()})
    return record


def recorded_accuracy(ckpt: Mapping[str, Any]) -> Optional[float]:
    """The test top-1 a checkpoint records: ``best_acc`` (ours, official TopKD), else ``accuracy``
    (RepDistiller's per-epoch files), else None (torchvision or TGD files record none)."""
    for key in ("best_acc", "accuracy"):
        value = ckpt.get(key)
        try:
            if value is not None:
                return round(float(value), 4)
        except (TypeError, ValueError):
            continue
    return None


def say(text: str) -> None:
    """A run-header line (logged: on stdout on rank 0 only, `engine.stage.setup_logging`)."""
    log.info(text)


def header_line(record: Mapping[str, Any]) -> str:
    """One line for the run header: commit, date, device."""
    commit = record.get("commit")
    code = "no git checkout" if commit is None else f"commit {commit[:10]}" + (" (dirty)" if record.get("dirty") else "")
    return f"provenance: {code}, {record.get('date')}, {record.get('device')}, torch {record['versions'].get('torch')}"
