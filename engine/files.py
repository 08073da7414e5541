"""Output files and folders: up-front checks with one-line errors, temporary files for atomic writes.

Atomic writers create ``<name>.<random>.tmp`` beside the target (`temp_beside`) and rename it over the
target when complete. A writer killed half-way leaves its temporary file; the next write of the same
target removes such leftovers first. Temporary files get the mode an ordinary ``open()`` would give
(0666 minus the umask, so 0644 by default) instead of mkstemp's private 0600.
"""
from __future__ import annotations

import glob
import os
import tempfile
from typing import Tuple

TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process umask (read from /proc where possible; otherwise set-and-restore)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permission bits of a new regular file under the current umask (0644 for umask 022)."""
    return 0o666 & ~current_umask()


def remove_stale_temps(path: str) -> int:
    """Delete leftovers ``<basename>.*.tmp`` of earlier interrupted writes of ``path`` -> how many."""
    folder, base = os.path.split(os.path.abspath(path))
    removed = 0
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(base) + ".*" + TMP_SUFFIX)):
        try:
            os.remove(stale)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def temp_beside(path: str) -> Tuple[int, str]:
    """``(fd, temporary path)`` in the folder of ``path`` for an atomic write: the folder is created,
    stale temporaries of ``path`` removed, and the file given the umask's mode."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=TMP_SUFFIX, dir=folder)
    try:
        os.fchmod(fd, file_mode())
    except BaseException:
        os.close(fd)
        os.remove(tmp)
        raise
    return fd, tmp


def check_output_dir(path: str, flag: str) -> str:
    """Make sure ``path`` is (or can become) a writable folder; ValueError naming ``flag`` otherwise."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a file, not a folder; pass a folder path")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot create the folder ({exc.strerror}); pass a folder you can "
                         f"write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path} is not writable (read-only folder?); pass a folder you can write to")
    return path


def check_output_file(path: str, flag: str) -> str:
    """``path`` is to be written as a file: not a folder, and its folder writable; ValueError otherwise."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; pass a file path")
    check_output_dir(os.path.dirname(os.path.abspath(path)), f"folder of {flag}")
    return path
