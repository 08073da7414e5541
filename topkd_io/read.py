"""Reading files without trusting them: checkpoints that cannot run code (`safe_load`), strict YAML (`read_yaml`),
``.npy`` files that are never pickles (`load_npy`), and the checksums that vouch for what a writer recorded: a
manifest's ``checksum`` field is the SHA-256 of its other fields (`seal`, `check_seal`), and it records each file's
size and SHA-256 (`file_record`, `verify_files`). Every failure is one line naming the file."""
import hashlib
import json
import os
import pickle
import shlex
from struct import error as struct_error
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
import torch
import yaml

from .errors import DamagedFileError, TopKDError
from .write import write_yaml


class UnsafeCheckpointError(TopKDError):
    """A file asked the unpickler for something outside the allowlist (it may try to run code)."""


def _numpy_safe_globals() -> list:
    """numpy's reconstructors under numpy 1's and 2's module names (files of either load), and its dtype classes."""
    multiarray = (getattr(np, "_core", None) or np.core).multiarray  # numpy 2 renamed numpy.core
    types = getattr(np, "dtypes", None)
    dtypes = [getattr(types, n) for n in dir(types) if n.endswith("DType") and isinstance(getattr(types, n), type)]
    fns = (multiarray.scalar, multiarray._reconstruct)
    return [np.dtype, np.ndarray, *fns, *dtypes] + [(fn, f"{module}.{fn.__name__}") for fn in fns
                                                     for module in ("numpy.core.multiarray", "numpy._core.multiarray")]


SAFE_GLOBALS = _numpy_safe_globals()


def safe_load(path: Any, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with the numpy allowlist -> the stored object."""
    path = os.fspath(path)
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            text = " ".join(str(exc).split())
            if "Unsupported global" in text or "not an allowed global" in text or "GLOBAL" in text:
                glob = text.split("GLOBAL ")[-1].split(" ")[0] if "GLOBAL " in text else "an unknown global"
                raise UnsafeCheckpointError(
                    f"{path} needs {glob}, which is not a tensor, a plain container or a numpy value; refusing to "
                    f"unpickle it (it could run code). Re-save the weights with "
                    f"torch.save({{'model': model.state_dict()}}, path)") from None
            raise


def read_error_reason(exc: BaseException) -> str:
    """Plain words for why ``torch.load`` or ``np.load`` could not read a file (the raw errors say ``101``)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EOFError) or "Ran out of input" in text or "No data left" in text:
        return "the file is empty or cut short"
    if isinstance(exc, (KeyError, pickle.UnpicklingError, UnicodeDecodeError)) or "invalid load key" in text:
        return "it is not a file written by torch.save"
    if "PytorchStreamReader" in text or "zip archive" in text or "central directory" in text:
        return "its archive is truncated or damaged"
    if isinstance(exc, (IndexError, struct_error)):  # the unpickler ran off the end of a cut pickle
        return "its contents are damaged or cut short"
    if "mmap length is greater" in text or "cannot reshape array" in text or \
            "size" in text and "does not match" in text:
        return "the file is shorter than its header says: cut short"
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def load_checkpoint(path: Any, map_location: Any = "cpu", what: str = "checkpoint",
                    hint: str = "re-save it or use another checkpoint (e.g. <arch>_last.pth of the same run)"
                    ) -> Dict[str, Any]:
    """A checkpoint (tensors and plain containers only) -> dict; `TopKDError` naming ``what`` otherwise."""
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
            raise _Refused(None, None, f"alias *{event.anchor} (anchors and aliases are not accepted; write values "
                           f"out)", event.start_mark)
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
                raise _Refused(None, None, f"key {key!r} appears twice (the second value would silently win; keep "
                               f"one)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Any, what: str = "YAML file", hint: str = "") -> Any:
    """The YAML file ``path`` parsed strictly (None when empty); `TopKDError` naming the file and line otherwise."""
    path = os.fspath(path)
    tail = f"; {hint}" if hint else ""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found{tail}")
    if os.path.getsize(path) > MAX_YAML_BYTES:
        raise TopKDError(f"{what} {path} is larger than YAML files here may be ({MAX_YAML_BYTES >> 20} MiB){tail}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise TopKDError(f"{what} {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                         f"is it the right file?{tail}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or str(exc).splitlines()[0]).split())[:200]
        if isinstance(exc, _Refused):
            raise TopKDError(f"{what} {path}{where.replace(' at', ',')}: {problem}{tail}") from None
        raise TopKDError(f"{what} {path} is not valid YAML{where} ({problem}){tail}") from None


def load_npy(path: Any, what: str = "array file", rebuild: str = "", mmap: bool = True) -> np.ndarray:
    """A ``.npy`` file, memory-mapped read-only (``mmap=False``: read into memory), never a pickle; a file
    shorter than its header says (a SIGBUS later) or unreadable -> `TopKDError` naming it and ``rebuild``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found{_hint(rebuild)}")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        # np.load maps what the header announces; a shorter file must not be mapped past its end
        if isinstance(arr, np.memmap) and os.path.getsize(path) < arr.offset + arr.nbytes:
            raise ValueError("mmap length is greater than file size")
    except (ValueError, OSError, EOFError) as exc:
        raise TopKDError(f"{what} {path} cannot be read ({read_error_reason(exc)}){_hint(rebuild)}") from None
    return arr


SEAL_KEY = "checksum"
_VERIFIED: set = set()  # (path, size, mtime_ns, sha256) of the files this process has hashed


def file_sha256(path: Any) -> str:
    with open(os.fspath(path), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_record(path: Any) -> Dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file just written."""
    return {"size": os.path.getsize(path), "sha256": file_sha256(path)}


def file_identity(path: Any, hash_file: bool = True) -> Dict[str, Any]:
    """An input file: absolute path, size, and SHA-256 (modification time when not hashed)."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": int(st.st_size),
            **({"sha256": file_sha256(path)} if hash_file else {"mtime": float(st.st_mtime)})}


def _hint(rebuild: Optional[str]) -> str:
    return f"; rebuild it with: {rebuild}" if rebuild else ""


def verify_file(path: Any, record: Mapping[str, Any], rebuild: Optional[str] = None, check_hash: bool = True) -> None:
    """`DamagedFileError` naming ``path`` (and the ``rebuild`` command) unless it exists with the ``size`` and
    ``sha256`` of ``record`` (``check_hash=False``: the size only); an empty record vouches for nothing."""
    path = os.fspath(path)
    if not record:
        raise DamagedFileError(f"{path} has no recorded size and SHA-256{_hint(rebuild)}")
    if not os.path.isfile(path):
        raise DamagedFileError(f"{path} is missing (it is recorded in its folder's manifest){_hint(rebuild)}")
    size = os.path.getsize(path)
    if "size" in record and int(record["size"]) != size:
        raise DamagedFileError(f"{path} has {size} bytes, its manifest records {int(record['size'])} (cut short or "
                               f"replaced){_hint(rebuild)}")
    if check_hash and record.get("sha256") and file_sha256(path) != record["sha256"]:
        raise DamagedFileError(f"{path} does not match the SHA-256 its manifest records (damaged or "
                               f"replaced){_hint(rebuild)}")


def verify_file_once(path: Any, record: Mapping[str, Any], rebuild: Optional[str] = None,
                     check_hash: bool = True) -> bool:
    """`verify_file`, hashing a file once per process while its size and mtime stay the same -> hashed now?"""
    st = os.stat(path) if record and os.path.isfile(path) else None
    key = st and (os.path.abspath(path), st.st_size, st.st_mtime_ns, record.get("sha256"))
    if key in _VERIFIED:
        return False
    verify_file(path, record, rebuild, check_hash)  # raises for a missing file: key is None only then
    hashed = bool(check_hash and record.get("sha256"))
    if hashed:
        _VERIFIED.add(key)
    return hashed


def verify_files(folder: Any, records: Iterable[Tuple[str, Mapping[str, Any]]], rebuild: Optional[str] = None,
                 check_hash: bool = True) -> int:
    """`verify_file_once` of each ``(name relative to folder, record)`` -> bytes hashed now."""
    return sum(int(record["size"]) for name, record in records
               if verify_file_once(os.path.join(folder, name), record, rebuild, check_hash))


def _data_sha256(data: Any) -> str:
    """SHA-256 of plain data in canonical JSON (keys as text, sorted): the same before a YAML write and after it."""
    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): canon(v) for k, v in value.items()}
        return [canon(v) for v in value] if isinstance(value, (list, tuple)) else value

    return hashlib.sha256(json.dumps(canon(data), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(data: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``data`` with ``checksum``, the SHA-256 of its other fields."""
    body = {k: v for k, v in data.items() if k != SEAL_KEY}
    return {**body, SEAL_KEY: _data_sha256(body)}


def check_seal(data: Mapping[str, Any], path: Any, rebuild: Optional[str] = None) -> None:
    """`DamagedFileError` naming ``path`` unless ``data`` carries the checksum of its other fields."""
    stored = data.get(SEAL_KEY)
    if not stored:
        raise DamagedFileError(f"{path} has no checksum of its fields (edited by hand?){_hint(rebuild)}")
    if _data_sha256({k: v for k, v in data.items() if k != SEAL_KEY}) != stored:
        raise DamagedFileError(f"{path} does not match its own checksum: its fields were edited or damaged after "
                               f"it was written{_hint(rebuild)}")


def write_sealed(path: Any, data: Dict[str, Any]) -> None:
    write_yaml(path, seal(data))


def read_sealed(path: Any, what: str) -> Dict[str, Any]:
    """A manifest written by `write_sealed`, its checksum not yet tested; not a YAML dict: `DamagedFileError`."""
    data = read_yaml(path, what)
    if not isinstance(data, dict):
        raise DamagedFileError(f"{path} is not a valid {what}")
    return data


def pinned_command(command: str, flag: str, value: Any, drop: Iterable[str] = ()) -> str:
    """A recorded command line with ``flag`` set to ``value`` and the flags of ``drop`` left out."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    gone = (flag, *drop)  # each as ``--flag value`` or ``--flag=value``
    out = [w for i, w in enumerate(words) if w.split("=", 1)[0] not in gone and not (i and words[i - 1] in gone)]
    return shlex.join(out + [flag, os.fspath(value)])
