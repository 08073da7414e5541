"""Manifests: the SHA-256 of each file a folder holds, and a checksum of the manifest's own fields.

A manifest is a YAML dict written by `write_sealed`: its ``checksum`` field is the SHA-256 of every other
field (`seal`), so a reader (`read_sealed`) refuses one that was edited or damaged. It records each file as
``{"size", "sha256"}`` (`file_record`); `verify_files` checks them, hashing each file once per process
while it stays unchanged. Errors are `DamagedFileError` naming the file and the command that rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from .atomic import write_yaml
from .errors import DamagedFileError
from .safe_load import read_yaml

SEAL_KEY = "checksum"
_VERIFIED: set = set()  # (path, size, mtime_ns, sha256) of the files this process has hashed


def file_sha256(path: Any) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Any) -> Dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file just written."""
    return {"size": os.path.getsize(path), "sha256": file_sha256(path)}


def file_identity(path: Any, hash_file: bool = True) -> Dict[str, Any]:
    """An input file: absolute path, size, and SHA-256 (modification time when not hashed)."""
    st = os.stat(path)
    out: Dict[str, Any] = {"path": os.path.abspath(path), "size": int(st.st_size)}
    if hash_file:
        out["sha256"] = file_sha256(path)
    else:
        out["mtime"] = float(st.st_mtime)
    return out


def _hint(rebuild: Optional[str]) -> str:
    return f"; rebuild it with: {rebuild}" if rebuild else ""


def verify_file(path: Any, record: Mapping[str, Any], rebuild: Optional[str] = None, check_hash: bool = True) -> None:
    """`DamagedFileError` naming ``path`` (and the ``rebuild`` command) unless it exists with the ``size`` and
    ``sha256`` of ``record`` (either may be missing; ``check_hash=False``: the size only)."""
    path = os.fspath(path)
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
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, record.get("sha256"))
    except OSError:
        key = None
    if key in _VERIFIED:
        return False
    verify_file(path, record, rebuild, check_hash)
    if key is None or not (check_hash and record.get("sha256")):
        return False
    _VERIFIED.add(key)
    return True


def verify_files(folder: Any, records: Iterable[Tuple[str, Mapping[str, Any]]], rebuild: Optional[str] = None,
                 check_hash: bool = True) -> int:
    """`verify_file_once` of each ``(name relative to folder, record)``; an empty record is refused (the manifest
    does not vouch for the file) -> bytes hashed now."""
    hashed = 0
    for name, record in records:
        path = os.path.join(folder, name)
        if not record:
            raise DamagedFileError(f"{path} has no recorded size and SHA-256{_hint(rebuild)}")
        if verify_file_once(path, record, rebuild, check_hash):
            hashed += int(record["size"])
    return hashed


def data_sha256(data: Any) -> str:
    """SHA-256 of plain data in canonical JSON (keys as text, sorted): the same before a YAML write and after
    reading it back."""
    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): canon(v) for k, v in value.items()}
        return [canon(v) for v in value] if isinstance(value, (list, tuple)) else value

    return hashlib.sha256(json.dumps(canon(data), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(data: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``data`` with ``checksum``, the `data_sha256` of its other fields."""
    body = {k: v for k, v in data.items() if k != SEAL_KEY}
    return {**body, SEAL_KEY: data_sha256(body)}


def check_seal(data: Mapping[str, Any], path: Any, rebuild: Optional[str] = None) -> None:
    """`DamagedFileError` naming ``path`` unless ``data`` carries the checksum of its other fields."""
    stored = data.get(SEAL_KEY)
    if not stored:
        raise DamagedFileError(f"{path} has no checksum of its fields (edited by hand?){_hint(rebuild)}")
    if data_sha256({k: v for k, v in data.items() if k != SEAL_KEY}) != stored:
        raise DamagedFileError(f"{path} does not match its own checksum: its fields were edited or damaged after "
                               f"it was written{_hint(rebuild)}")


def write_sealed(path: Any, data: Dict[str, Any]) -> None:
    """Write a manifest with the checksum of its fields, atomically."""
    write_yaml(path, seal(data))


def read_sealed(path: Any, what: str, rebuild: Optional[str] = None, check: bool = True) -> Dict[str, Any]:
    """A manifest written by `write_sealed` (``check=False``: without testing its checksum); a file that is not
    a YAML dict or fails its checksum -> `DamagedFileError` naming it."""
    data = read_yaml(path, what, f"rebuild it with: {rebuild}" if rebuild else "")
    if not isinstance(data, dict):
        raise DamagedFileError(f"{path} is not a valid {what}{_hint(rebuild)}")
    if check:
        check_seal(data, path, rebuild)
    return data


def pinned_command(command: str, flag: str, value: Any, drop: Iterable[str] = ()) -> str:
    """A recorded command line with ``flag`` set to ``value`` (a folder moved since it was written names where
    it is now) and the flags of ``drop`` left out."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out, skip, gone = [], False, (flag, *drop)
    for word in words:
        if skip or word.startswith(tuple(f"{g}=" for g in gone)):
            skip = False
            continue
        if word in gone:
            skip = True
            continue
        out.append(word)
    return shlex.join(out + [flag, os.fspath(value)])
