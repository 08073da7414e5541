"""The one way this project reads a ``.pth`` file: ``torch.load(weights_only=True)`` plus a fixed allowlist.

Official TopKD and RepDistiller checkpoints were saved with numpy floats in their optimizer state (and
``best_acc`` as a numpy scalar), which the plain ``weights_only=True`` unpickler refuses. The allowlist
below admits exactly the numpy pieces such a value is rebuilt from (the scalar reconstructor, ``dtype``
and the concrete dtype classes, ``ndarray`` reconstruction); nothing that can call arbitrary code. Any
other global in the file makes the load fail with ``UnsafeCheckpointError`` naming the file and the global.
"""
from __future__ import annotations

import os
import pickle
from struct import error as struct_error
from typing import Any, List

import numpy as np
import torch


class UnsafeCheckpointError(ValueError):
    """A file asked the unpickler for something outside the allowlist (it may try to run code)."""


def _numpy_safe_globals() -> List[Any]:
    """numpy's scalar/array reconstructors and every concrete dtype class of this numpy version."""
    out: List[Any] = [np.dtype, np.ndarray]
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    multiarray = core.multiarray
    out += [multiarray.scalar, multiarray._reconstruct]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")
                and isinstance(getattr(dtypes, name), type)]
    # Files written under numpy 1.x name the reconstructors numpy.core.multiarray.*; under numpy 2,
    # numpy._core.multiarray.*. Register both spellings so either kind of file loads.
    aliases = []
    for fn in (multiarray.scalar, multiarray._reconstruct):
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            aliases.append((fn, f"{module}.{fn.__name__}"))
    return out + aliases


SAFE_GLOBALS = _numpy_safe_globals()


def safe_load(path: Any, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with the numpy allowlist -> the stored object.

    Raises FileNotFoundError for a missing path, UnsafeCheckpointError when the file needs a global
    outside the allowlist (a crafted or foreign pickle: nothing of it runs), and lets other read errors
    through for the caller to word.
    """
    path = os.fspath(path) if not hasattr(path, "read") else path
    if isinstance(path, str) and not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; check the path")
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            text = " ".join(str(exc).split())
            if "Unsupported global" in text or "not an allowed global" in text or "GLOBAL" in text:
                name = path if isinstance(path, str) else "the file"
                glob = text.split("GLOBAL ")[-1].split(" ")[0] if "GLOBAL " in text else "an unknown global"
                raise UnsafeCheckpointError(
                    f"{name} needs {glob}, which is not a tensor, a plain container or a numpy value; "
                    f"refusing to unpickle it (it could run code). Re-save the weights with "
                    f"torch.save({{'model': model.state_dict()}}, path)") from None
            raise


def read_error_reason(exc: BaseException) -> str:
    """Plain words for why ``torch.load`` could not read a file (the raw errors say things like ``101``)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EOFError) or "Ran out of input" in text:
        return "the file is empty or cut short"
    if isinstance(exc, (KeyError, pickle.UnpicklingError, UnicodeDecodeError)) or "invalid load key" in text:
        return "it is not a file written by torch.save"
    if "PytorchStreamReader" in text or "zip archive" in text or "central directory" in text:
        return "its archive is truncated or damaged"
    if isinstance(exc, (IndexError, struct_error)):  # the unpickler ran off the end of a cut pickle
        return "its contents are damaged or cut short"
    if isinstance(exc, OSError):
        return f"the file could not be read ({exc.strerror or type(exc).__name__})"
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__
