"""Checksums of files, and the check of a file against what its writer recorded."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
from typing import Any, Dict, Mapping, Optional

from .errors import DamagedFileError

BLOCK = 1 << 20


def file_sha256(path: Any, block: int = BLOCK) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_identity(path: Any, hash_file: bool = True) -> Dict[str, Any]:
    """Identity of an input file: absolute path, size, and SHA-256 (or modification time when not hashed)."""
    path = os.fspath(path)
    st = os.stat(path)
    ident: Dict[str, Any] = {"path": os.path.abspath(path), "size": int(st.st_size)}
    if hash_file:
        ident["sha256"] = file_sha256(path)
    else:
        ident["mtime"] = float(st.st_mtime)
    return ident


def file_record(path: Any) -> Dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file just written (what a reader checks it against)."""
    path = os.fspath(path)
    return {"size": int(os.path.getsize(path)), "sha256": file_sha256(path)}


def verify_file(path: Any, record: Mapping[str, Any], rebuild: Optional[str] = None,
                check_hash: bool = True) -> None:
    """Check ``path`` against ``record`` (``size``, ``sha256``; either may be missing).

    Raises `DamagedFileError` naming the file, what differs and, when given, the ``rebuild`` command;
    FileNotFoundError-like absence is reported the same way (the file belongs to a recorded set).
    """
    path = os.fspath(path)
    hint = f"; rebuild it with: {rebuild}" if rebuild else ""
    if not os.path.isfile(path):
        raise DamagedFileError(f"{path} is missing (it is recorded in its folder's manifest){hint}")
    size = os.path.getsize(path)
    if "size" in record and int(record["size"]) != size:
        raise DamagedFileError(f"{path} has {size} bytes, its manifest records {int(record['size'])} (cut short or "
                               f"replaced){hint}")
    if check_hash and record.get("sha256") and file_sha256(path) != record["sha256"]:
        raise DamagedFileError(f"{path} does not match the SHA-256 its manifest records (damaged or "
                               f"replaced){hint}")


# ----------------------------------------------------------------------------- sealed records
SEAL_KEY = "checksum"


def data_sha256(data: Any) -> str:
    """SHA-256 of plain data (dicts, lists, str, numbers, bools, None) in a canonical JSON form.

    Dict keys are compared as text and sorted, so the value is the same before a YAML write and after
    reading the file back (YAML keeps ints, floats (repr), strings and booleans exactly)."""
    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): canon(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [canon(v) for v in value]
        return value

    text = json.dumps(canon(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return bytes_sha256(text.encode("ascii"))


def seal(data: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``data`` with ``checksum``: the `data_sha256` of every other field (a manifest's own
    fields then cannot be edited, reordered or swapped without the reader noticing)."""
    body = {k: v for k, v in data.items() if k != SEAL_KEY}
    return {**body, SEAL_KEY: data_sha256(body)}


def check_seal(data: Mapping[str, Any], path: Any, rebuild: Optional[str] = None) -> None:
    """`DamagedFileError` naming ``path`` unless ``data`` carries the checksum of its other fields."""
    hint = f"; rebuild it with: {rebuild}" if rebuild else ""
    stored = data.get(SEAL_KEY) if isinstance(data, Mapping) else None
    if not stored:
        raise DamagedFileError(f"{os.fspath(path)} has no checksum of its fields (written by an older version, or "
                               f"edited by hand){hint}")
    if data_sha256({k: v for k, v in data.items() if k != SEAL_KEY}) != stored:
        raise DamagedFileError(f"{os.fspath(path)} does not match its own checksum: its fields were edited or "
                               f"damaged after it was written{hint}")


# (absolute path, size, mtime_ns, recorded sha256) of files this process has already checked
_VERIFIED: set = set()


def verify_file_once(path: Any, record: Mapping[str, Any], rebuild: Optional[str] = None,
                     check_hash: bool = True) -> bool:
    """`verify_file`, hashing each file at most once per process while it stays unchanged (same size and
    modification time): a run that opens one folder several times (train, validation, workers) pays once.
    -> True when the file was hashed now, False when the check was remembered or ``check_hash`` is off."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    key = None if st is None else (os.path.abspath(path), st.st_size, st.st_mtime_ns, record.get("sha256"))
    if key is not None and key in _VERIFIED:
        return False
    verify_file(path, record, rebuild, check_hash=check_hash)
    if key is not None and check_hash and record.get("sha256"):
        _VERIFIED.add(key)
        return True
    return False


def pinned_command(command: str, flag: str, value: Any) -> str:
    """A recorded command line with ``flag``'s value replaced by ``value`` (added when missing): the
    rebuild command of a folder that was moved or copied since it was written names where it is now."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word == flag:
            skip = True
            continue
        if word.startswith(flag + "="):
            continue
        out.append(word)
    return shlex.join(out + [flag, os.fspath(value)])
