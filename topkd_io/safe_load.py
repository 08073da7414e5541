"""Reading files without trusting them: ``.pth`` files that cannot run code, YAML that cannot explode.

`safe_load` is ``torch.load(weights_only=True)`` plus the numpy pieces official TopKD and RepDistiller
checkpoints need (numpy scalars in their optimizer state and ``best_acc``); any other global is refused with
`UnsafeCheckpointError`. `read_yaml` refuses non-UTF-8 text, duplicate keys (the second value would silently
win), anchors and aliases (nested aliases expand to gigabytes), deep nesting and files over 64 MiB. Every
failure is one line naming the file.
"""
from __future__ import annotations

import os
import pickle
from struct import error as struct_error
from typing import Any, Dict, List

import numpy as np
import torch
import yaml

from .errors import TopKDError


class UnsafeCheckpointError(TopKDError):
    """A file asked the unpickler for something outside the allowlist (it may try to run code)."""


def _numpy_safe_globals() -> List[Any]:
    """numpy's scalar and array reconstructors, under numpy 1's and numpy 2's module names (files of either
    load), and every concrete dtype class."""
    multiarray = (getattr(np, "_core", None) or np.core).multiarray  # numpy 2 renamed numpy.core
    types = getattr(np, "dtypes", None)
    dtypes = [getattr(types, n) for n in dir(types) if n.endswith("DType") and isinstance(getattr(types, n), type)]
    fns = (multiarray.scalar, multiarray._reconstruct)
    return [np.dtype, np.ndarray, *fns, *dtypes] + [(fn, f"{module}.{fn.__name__}") for fn in fns
                                                     for module in ("numpy.core.multiarray", "numpy._core.multiarray")]


SAFE_GLOBALS = _numpy_safe_globals()


def safe_load(path: Any, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with the numpy allowlist -> the stored object; other read errors
    pass through for the caller to word (`read_error_reason`)."""
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


def load_checkpoint(path: Any, map_location: Any = "cpu", what: str = "checkpoint",
                    hint: str = "re-save it or use another checkpoint (e.g. <arch>_last.pth of the same run)"
                    ) -> Dict[str, Any]:
    """A checkpoint (tensors and plain containers only) -> dict; `TopKDError` naming ``what``, ending in
    ``hint``, when it cannot be read as one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found; check the path")
    try:
        ckpt = safe_load(path, map_location=map_location)
    except UnsafeCheckpointError:
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise TopKDError(f"{what} {path} cannot be read ({read_error_reason(exc)}); {hint}") from None
    if not isinstance(ckpt, dict):
        raise TopKDError(f"{what} {path} holds a {type(ckpt).__name__}, expected a dict")
    return ckpt


# ----------------------------------------------------------------------------- YAML

MAX_YAML_BYTES = 64 << 20
MAX_YAML_DEPTH = 50  # nesting levels; the composer recurses once per level


class _Refused(yaml.constructor.ConstructorError):
    """Valid YAML that this project does not accept (a duplicate key, an alias, deep nesting)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing aliases, duplicate keys and nesting deeper than ``MAX_YAML_DEPTH``."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                None, None, f"alias *{event.anchor} (anchors and aliases are not accepted; write values out)",
                event.start_mark)
        if self.depth >= MAX_YAML_DEPTH:
            raise _Refused(None, None, f"values nested more than {MAX_YAML_DEPTH} levels deep are not accepted",
                           event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the base class words that error
                break
            if duplicate:
                raise _Refused(
                    None, None, f"key {key!r} appears twice (the second value would silently win; keep one)",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Any, what: str = "YAML file", hint: str = "") -> Any:
    """The YAML file ``path`` parsed strictly (None when empty); `TopKDError` naming ``what``, ``path`` and the
    line (plus ``hint``) otherwise."""
    path = os.fspath(path)
    tail = f"; {hint}" if hint else ""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found{tail}")
    size = os.path.getsize(path)
    if size > MAX_YAML_BYTES:
        raise TopKDError(f"{what} {path} is {size} bytes, more than YAML files here may be "
                         f"({MAX_YAML_BYTES >> 20} MiB){tail}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopKDError(f"{what} {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                         f"is it the right file?{tail}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problem = " ".join(str(problem).split())[:200]
        if isinstance(exc, _Refused):
            raise TopKDError(f"{what} {path}{where.replace(' at', ',')}: {problem}{tail}") from None
        raise TopKDError(f"{what} {path} is not valid YAML{where} ({problem}){tail}") from None


# ----------------------------------------------------------------------------- .npy arrays
def _npy_reason(exc: BaseException) -> str:
    """Plain words for why numpy could not open a ``.npy`` file."""
    text = " ".join(str(exc).split())
    if "mmap length is greater than file size" in text or "cannot reshape array" in text \
            or "size" in text and "does not match" in text:
        return "the file is shorter than its header says: cut short"
    if isinstance(exc, EOFError) or "No data left" in text or "empty" in text:
        return "the file is empty or cut short"
    if "magic string" in text or "header" in text.lower():
        return "it is not a .npy file, or its header is damaged"
    if "pickle" in text.lower():
        return "it holds Python objects (a pickle), which are not loaded"
    if isinstance(exc, OSError):
        return f"it could not be read ({exc.strerror or type(exc).__name__})"
    return f"{type(exc).__name__}: {text[:80]}"


def load_npy(path: Any, what: str = "array file", rebuild: str = "", mmap: bool = True) -> np.ndarray:
    """A ``.npy`` file, memory-mapped read-only (``mmap=False``: read into memory), never a pickle; a file
    shorter than its header says (a SIGBUS later) or unreadable -> `TopKDError` naming it and ``rebuild``."""
    path = os.fspath(path)
    hint = f"; rebuild it with: {rebuild}" if rebuild else ""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found{hint}")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if mmap:  # np.load maps what the header announces; a shorter file must not be mapped past its end
            expected = arr.offset + arr.nbytes if isinstance(arr, np.memmap) else None
            if expected is not None and os.path.getsize(path) < expected:
                raise ValueError("mmap length is greater than file size")
    except (ValueError, OSError, EOFError) as exc:
        raise TopKDError(f"{what} {path} cannot be read ({_npy_reason(exc)}){hint}") from None
    return arr
