"""Checksums of files, and the check of a file against what its writer recorded."""
from __future__ import annotations

import hashlib
import os
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
