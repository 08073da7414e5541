"""One writer per folder: ``with FolderLock(folder, flag="--run_dir"):`` holds an exclusive ``fcntl.flock`` on
``<folder>/.topkd.lock`` (the holder's PID, host, command and start time written in it, for messages) and
removes the file on exit. The kernel drops the lock when its process ends, however it ends, so only a live
holder counts. Another process asking for a held folder gets a `TopKDError` naming the holder. The same
process may take a lock it holds (released by the outermost holder); a forked child does not hold it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from typing import Any, Dict, List, Optional

from .atomic import file_mode
from .errors import TopKDError

LOCK_NAME = ".topkd.lock"
_HELD: Dict[str, List[int]] = {}  # lock path -> [file descriptor, nesting depth], in this process


def _record(fd: int) -> Dict[str, Any]:
    """The holder record written in the lock file (``{}`` when it is empty or unreadable)."""
    try:
        data = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def busy_text(path: str, holder: Dict[str, Any]) -> str:
    """``in use by PID 12 (python train_teacher.py ...) since <time> (lock file <path>)``."""
    who = f"PID {holder['pid']}" if "pid" in holder else "another process"
    if holder.get("host") not in (None, socket.gethostname()):
        who += f" on {holder['host']}"
    command = f" ({holder['command']})" if holder.get("command") else ""
    since = f" since {holder['started']}" if holder.get("started") else ""
    return f"in use by {who}{command}{since} (lock file {path})"


def _same_file(fd: int, path: str) -> bool:
    """Whether ``fd`` is still the file at ``path`` (a lock on a file its holder removed protects nothing)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


class FolderLock:
    """Exclusive use of ``folder`` while the ``with`` block runs; ``flag`` (the option that chose the folder)
    and ``what`` (its role) are named in the error."""

    def __init__(self, folder: Any, flag: str = "--run_dir", what: str = "folder"):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.flag, self.what = flag, what

    def acquire(self) -> "FolderLock":
        if self.path in _HELD:
            _HELD[self.path][1] += 1
            return self
        os.makedirs(self.folder, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())  # not O_TRUNC: a holder's record stays
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _record(fd)
                os.close(fd)
                raise TopKDError(f"{self.what} {self.folder} is {busy_text(self.path, holder)}; wait for it to "
                                 f"finish or choose another {self.flag}") from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # removed by its last holder meanwhile: lock the file now there
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv) or sys.executable,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        _HELD[self.path] = [fd, 1]
        return self

    def release(self) -> None:
        held = _HELD.get(self.path)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self.path]
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)  # while still locked, so nobody locks a file about to vanish
        os.close(held[0])

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def _drop_in_child() -> None:
    """A forked child (a DataLoader worker) closes the inherited lock descriptors (unlike LOCK_UN, closing
    leaves the parent's lock alone): a child outliving a killed parent does not hold it."""
    for fd, _ in _HELD.values():
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_in_child)


def lock_holder(folder: Any) -> Optional[Dict[str, Any]]:
    """The record of another live process holding ``folder``'s lock (``{}`` before it wrote one), or None when
    the folder is free or held by this process (probed with a shared lock for an instant)."""
    path = FolderLock(folder).path
    if path in _HELD:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (or none we may read): nobody holds it
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _record(fd)
    finally:
        os.close(fd)
