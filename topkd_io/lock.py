"""One writer per folder: a lock file held while a stage writes into a folder.

``with FolderLock(folder, flag="--run_dir"):`` creates ``<folder>/.topkd.lock`` exclusively (``O_EXCL``)
holding the owner's PID, host, command line and start time, and removes it on exit. A second process
asking for the same folder gets a `TopKDError` naming the holder's PID and command. A lock left by a
killed process (same host, PID no longer alive) is taken over. The same process may take a lock it
already holds (nested stages of the quickstart): it is released when the outermost holder exits.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any, Dict, Optional

from .atomic import file_mode, host_tag, pid_alive
from .errors import TopKDError

LOCK_NAME = ".topkd.lock"
# A lock file that cannot be read (its writer is between open and write) is judged stale after this long.
UNREADABLE_LOCK_AGE_S = 30.0
_HELD: Dict[str, int] = {}  # lock path -> nesting depth, in this process


def _read_holder(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


class FolderLock:
    """Exclusive use of ``folder`` by this process while the ``with`` block runs (see the module docstring).

    ``flag`` names the option that chose the folder (used in the error); ``what`` names the folder's role.
    """

    def __init__(self, folder: Any, flag: str = "--run_dir", what: str = "folder"):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.flag, self.what = flag, what

    def _claim(self) -> bool:
        """Create the lock file exclusively -> True; False when it exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode())
        except FileExistsError:
            return False
        record = {"pid": os.getpid(), "host": host_tag(), "command": " ".join(sys.argv) or sys.executable,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _stale(self, holder: Optional[Dict[str, Any]]) -> bool:
        if holder is None:
            try:
                return time.time() - os.path.getmtime(self.path) > UNREADABLE_LOCK_AGE_S
            except OSError:
                return True  # vanished meanwhile
        return holder.get("host") == host_tag() and not pid_alive(int(holder.get("pid", -1)))

    def acquire(self) -> "FolderLock":
        if _HELD.get(self.path):
            _HELD[self.path] += 1
            return self
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(5):
            if self._claim():
                _HELD[self.path] = 1
                return self
            holder = _read_holder(self.path)
            if not self._stale(holder):
                break
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)  # its owner is gone
        holder = _read_holder(self.path) or {}
        who = f"PID {holder.get('pid', '?')}"
        if holder.get("host") not in (None, host_tag()):
            who += " on another host"
        command = holder.get("command")
        raise TopKDError(f"{self.what} {self.folder} is in use by {who}"
                         f"{f' ({command})' if command else ''} since {holder.get('started', '?')}; wait for it "
                         f"to finish or choose another {self.flag} (delete {self.path} only if that process is "
                         f"really gone)")

    def release(self) -> None:
        depth = _HELD.get(self.path, 0)
        if depth > 1:
            _HELD[self.path] = depth - 1
            return
        _HELD.pop(self.path, None)
        holder = _read_holder(self.path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == host_tag():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def lock_holder(folder: Any) -> Optional[Dict[str, Any]]:
    """The live holder record of ``folder``'s lock, or None when nobody (alive) holds it."""
    lock = FolderLock(folder)
    if not os.path.isfile(lock.path):
        return None
    holder = _read_holder(lock.path)
    return None if lock._stale(holder) else (holder or {})
