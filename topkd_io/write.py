"""Writing files: the one atomic writer (a temporary beside the target, fsync, rename, fsync of the folder: a file
that exists is complete; only a regular file or a missing path is replaced), the checks of an output path that go
before it, and `FolderLock`, one writer per folder (``fcntl.flock``: the kernel drops it when its holder dies)."""
import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import os
import socket
import stat
import sys
import time
from typing import IO, Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml

from .errors import TopKDError

TMP_SUFFIX = ".tmp"
LOCK_NAME = ".topkd.lock"


def host_tag() -> str:
    """Six hex digits naming this host (temporaries of other hosts are never judged by PID)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return pid > 0


def remove_stale_temps(path: str) -> None:
    """Delete the temporaries of earlier writes of ``path`` whose writer on this host is gone."""
    folder, base = os.path.split(os.path.abspath(path))
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(base) + ".*" + TMP_SUFFIX)):
        owner = os.path.basename(stale)[len(base) + 1:-len(TMP_SUFFIX)].split(".")
        if len(owner) >= 3 and owner[0] == host_tag() and owner[1].isdigit() and not pid_alive(int(owner[1])):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)


def _named(exc: BaseException, path: str) -> BaseException:
    """An error raised while writing ``path`` that names no file -> an OSError naming ``path``. numpy's short write
    (no errno) and torch's zip writer (a RuntimeError) get the errno of the OSError behind them, else ENOSPC when
    the disk has under 1 MiB free, else EIO. Any other error is returned as it is."""
    name, text = os.path.basename(path), str(exc)
    torch_writer = isinstance(exc, RuntimeError) and any(
        k in text for k in ("PytorchStreamWriter", "inline_container", "file write failed"))
    if not torch_writer and not (isinstance(exc, OSError) and exc.filename is None):
        return exc
    if isinstance(exc, OSError) and exc.errno:
        return OSError(exc.errno, f"cannot write {name} ({exc.strerror})", path)
    cause = exc.__context__ if torch_writer else None
    code = cause.errno if isinstance(cause, OSError) and cause.errno else errno.EIO
    if code == errno.EIO:
        with contextlib.suppress(OSError):
            st = os.statvfs(os.path.dirname(path))
            code = errno.ENOSPC if st.f_bavail * st.f_frsize < 1 << 20 else code
    how = "the writer stopped half-way" if torch_writer else "only part of the data was written"
    return OSError(code, f"cannot write {name} ({os.strerror(code)}: {how})", path)


def open_temp(path: str):
    """``(fd, temporary path)`` beside ``path`` (same file system: the rename is atomic); the umask applies."""
    tmp = f"{path}.{host_tag()}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp


class atomic_write:
    """``with atomic_write(path) as f:`` writes ``path`` all or nothing (``mode`` ``"wb"`` or ``"w"``); a file
    written over time: ``w = atomic_write(path)``, write to ``w.file``, then ``w.commit()`` or ``w.abort()``."""

    def __init__(self, path: Any, mode: str = "wb"):
        self.path = os.path.abspath(os.fspath(path))  # named in errors
        self.target = os.path.realpath(self.path)  # what is replaced: the file a link names
        check_replaceable(self.path)
        try:
            os.makedirs(os.path.dirname(self.target), exist_ok=True)
            remove_stale_temps(self.target)
            fd, self.tmp = open_temp(self.target)
        except OSError as exc:
            raise _named(exc, self.path) from None
        self.file: IO = os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {}))

    def commit(self) -> None:
        """Flush, fsync, rename over the target and fsync the folder; on failure, abort and raise."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            check_replaceable(self.path)  # again: something may have been put there meanwhile
            os.replace(self.tmp, self.target)
        except BaseException as exc:
            self._fail(exc)
            raise
        with contextlib.suppress(OSError):  # make the rename durable (where folders can be opened)
            fd = os.open(os.path.dirname(self.target), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def abort(self) -> None:
        """Drop the temporary; the target is left as it was."""
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.remove(self.tmp)

    def _fail(self, exc: BaseException) -> None:
        """Abort; raise ``exc`` as an OSError naming the file when it names none (the caller re-raises it else)."""
        self.abort()
        named = _named(exc, self.path)
        if named is not exc:
            raise named from None

    def __enter__(self) -> IO:
        return self.file

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            self.commit()
        else:
            self._fail(exc)
        return False


def write_text(path: Any, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_yaml(path: Any, data: Any, sort_keys: bool = False) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=sort_keys))


def save_npy(path: Any, array: np.ndarray) -> None:
    with atomic_write(path) as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def save_npz(path: Any, **arrays: np.ndarray) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def save_torch(obj: Any, path: Any) -> None:
    with atomic_write(path) as f:
        torch.save(obj, f)


class AtomicNpyWriter(atomic_write):
    """A ``.npy`` of known shape written in row blocks (plain writes, no memory map): ``write(block)`` ..., then
    ``commit()`` (or ``abort()``); as ``with AtomicNpyWriter(...) as w:``, committed when the block ends."""

    def __init__(self, path: str, shape: Tuple[int, ...], dtype=np.float32):
        super().__init__(path)
        self.shape, self.dtype, self.rows = tuple(shape), np.dtype(dtype), 0
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        self._guard(lambda: np.lib.format.write_array_header_1_0(self.file, header))

    def __enter__(self) -> "AtomicNpyWriter":
        return self

    def _guard(self, write) -> None:
        """``write()``; a failure aborts the file and comes back naming it."""
        try:
            write()
        except BaseException as exc:
            self._fail(exc)
            raise

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows + len(block) > self.shape[0]:
            raise ValueError(f"block {block.shape} does not fit {self.shape} after {self.rows} rows")
        self._guard(lambda: self.file.write(block.tobytes()))
        self.rows += len(block)

    def commit(self) -> None:
        if self.rows != self.shape[0]:
            self.abort()
            raise ValueError(f"{self.path}: wrote {self.rows} of {self.shape[0]} rows")
        super().commit()


def check_utf8(value: Any, flag: str) -> None:
    """`TopKDError` naming ``flag`` when a path from the command line is not valid UTF-8 (Python keeps such bytes
    as surrogates, which config.yaml and manifests cannot hold)."""
    if not isinstance(value, str):
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = os.fsencode(value[exc.start:exc.end])[0]
        raise TopKDError(f"{flag} {os.fsencode(value)!r} is not valid UTF-8 text (byte 0x{bad:02x}); use a name in "
                         f"UTF-8 (rename the folder or file)") from None


def check_output_dir(path: Any, flag: str) -> str:
    """``path`` is (or is made) a writable folder; `TopKDError` naming ``flag`` otherwise."""
    path = os.fspath(path)
    check_utf8(path, flag)
    if os.path.exists(path) and not os.path.isdir(path):
        raise TopKDError(f"{flag} {path} is a file, not a folder; pass a folder path")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise TopKDError(f"{flag} {path}: cannot create the folder ({exc.strerror}); pass a folder you can "
                         f"write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise TopKDError(f"{flag} {path} is not writable (read-only folder?); pass a folder you can write to")
    return path


_NOT_REGULAR = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a loop of links"}


def check_replaceable(path: Any, flag: str = "") -> None:
    """`TopKDError` naming ``flag`` and ``path`` unless ``path`` (a link followed) is missing or a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return  # missing (a dangling link: the file it names is created); else the write says what is wrong
        mode = stat.S_IFLNK
    if not stat.S_ISREG(mode):
        raise TopKDError(f"{flag + ' ' if flag else ''}{os.fspath(path)} is "
                         f"{_NOT_REGULAR.get(stat.S_IFMT(mode), 'a special file')}, not a regular file; writing "
                         f"would replace it: pass the path of a file")


def check_output_file(path: Any, flag: str) -> str:
    """``path`` can be written as a file (`check_replaceable`) in a writable folder; `TopKDError` otherwise."""
    path = os.fspath(path)
    check_replaceable(path, flag)
    check_output_dir(os.path.dirname(os.path.abspath(path)), f"folder of {flag}")
    return path


_HELD: Dict[str, List[int]] = {}  # lock path -> [file descriptor, nesting depth], in this process


def _holder(fd: int) -> Dict[str, Any]:
    """The holder record written in a lock file (``{}`` when it is empty or unreadable)."""
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


class FolderLock:
    """``with FolderLock(folder, flag, what):`` exclusive use of ``folder`` by an ``fcntl.flock`` on its lock file,
    which records the holder for the `TopKDError` (naming ``flag`` and ``what``) another process gets meanwhile.
    The same process may take it again (released by the outermost holder); a forked child does not hold it."""

    def __init__(self, folder: Any, flag: str = "--run_dir", what: str = "folder"):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.flag, self.what = flag, what

    def __enter__(self) -> "FolderLock":
        if self.path in _HELD:
            _HELD[self.path][1] += 1
            return self
        os.makedirs(self.folder, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # not O_TRUNC: a holder's record stays
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise TopKDError(f"{self.what} {self.folder} is {busy_text(self.path, holder)}; wait for it to "
                                 f"finish or choose another {self.flag}") from None
            except BaseException:
                os.close(fd)
                raise
            with contextlib.suppress(FileNotFoundError):  # a lock on a file its holder removed protects nothing
                if os.path.samestat(os.stat(self.path), os.fstat(fd)):
                    break
            os.close(fd)  # removed by its last holder meanwhile: lock the file now there
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv) or sys.executable,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        _HELD[self.path] = [fd, 1]
        return self

    def __exit__(self, *exc) -> bool:
        held = _HELD.get(self.path)
        if held is not None:
            held[1] -= 1
            if held[1] == 0:
                del _HELD[self.path]
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)  # while still locked, so nobody locks a file about to vanish
                os.close(held[0])
        return False


def _drop_in_child() -> None:
    """A forked child closes the inherited lock descriptors (unlike LOCK_UN, closing leaves the parent's lock
    alone): a child outliving a killed parent does not hold it."""
    for fd, _ in _HELD.values():
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_in_child)


def lock_holder(folder: Any) -> Optional[Dict[str, Any]]:
    """The record of another live process holding ``folder``'s lock (``{}`` before it wrote one), or None when the
    folder is free or held by this process (probed with a shared lock for an instant)."""
    path = os.path.join(os.path.abspath(os.fspath(folder)), LOCK_NAME)
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
        return _holder(fd)
    finally:
        os.close(fd)
