"""The one atomic writer, and the output-path checks that go before it.

`atomic_write(path)` writes a temporary ``<name>.<host>.<pid>.<random>.tmp`` beside ``path``, fsyncs it,
renames it over ``path`` and fsyncs the folder: a file that exists is complete. A failure removes the
temporary, keeps the earlier file and comes back as an OSError naming ``path``. Only a regular file or a
missing path is replaced (a link is followed); a folder, device, FIFO or socket is refused. Leftover
temporaries of ``path`` whose writer (on this host) is gone are removed first. New files get the mode
``open()`` would give (0666 minus the umask).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import socket
import stat
import tempfile
from typing import IO, Any, Tuple

import numpy as np
import torch
import yaml

from .errors import TopKDError

TMP_SUFFIX = ".tmp"


def host_tag() -> str:
    """Six hex digits naming this host (temporaries and locks of other hosts are never judged by PID)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def file_mode() -> int:
    """Permission bits of a new regular file under the current umask (0644 for umask 022); the umask is read
    from /proc where possible (setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale_temps(path: str) -> int:
    """Delete the temporaries of earlier writes of ``path`` whose writer on this host is gone -> how many."""
    folder, base = os.path.split(os.path.abspath(path))
    removed = 0
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(base) + ".*" + TMP_SUFFIX)):
        owner = os.path.basename(stale)[len(base) + 1:-len(TMP_SUFFIX)].split(".")
        if len(owner) >= 3 and owner[0] == host_tag() and owner[1].isdigit() and not pid_alive(int(owner[1])):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)
                removed += 1
    return removed


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (skipped where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _named(exc: BaseException, path: str) -> BaseException:
    """An error raised while writing ``path`` -> an OSError naming ``path`` when the original names no file:
    numpy's short write (no errno) and torch's zip writer (a RuntimeError ``... file write failed``) get the
    errno of the OSError behind them, else ENOSPC when the disk has under 1 MiB free, else EIO."""
    name, text = os.path.basename(path), " ".join(str(exc).split())
    torch_writer = isinstance(exc, RuntimeError) and any(
        k in text for k in ("PytorchStreamWriter", "inline_container", "file write failed"))
    if not torch_writer and not (isinstance(exc, OSError) and exc.filename is None):
        return exc
    cause = exc if isinstance(exc, OSError) else exc.__context__
    code = cause.errno if isinstance(cause, OSError) and cause.errno else errno.EIO
    if code == errno.EIO:
        with contextlib.suppress(OSError):
            st = os.statvfs(os.path.dirname(path))
            code = errno.ENOSPC if st.f_bavail * st.f_frsize < 1 << 20 else code
    if isinstance(exc, OSError) and exc.errno:
        return OSError(exc.errno, f"cannot write {name} ({exc.strerror})", path)
    how = "the writer stopped half-way" if torch_writer else "only part of the data was written"
    return OSError(code, f"cannot write {name} ({os.strerror(code)}: {how})", path)


def open_temp(path: str):
    """``(fd, temporary path)`` beside ``path`` (same file system: the rename is atomic), with the umask's mode."""
    fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.{host_tag()}.{os.getpid()}.", suffix=TMP_SUFFIX,
                               dir=os.path.dirname(path))
    os.fchmod(fd, file_mode())
    return fd, tmp


class atomic_write:
    """``with atomic_write(path) as f:`` writes ``path`` all or nothing (``mode`` ``"wb"`` or ``"w"``); a file
    written over time: ``w = atomic_write(path)``, write to ``w.file``, then ``w.commit()`` or ``w.abort()``."""

    def __init__(self, path: Any, mode: str = "wb", encoding: str = "utf-8"):
        self.path = os.path.abspath(os.fspath(path))  # named in errors
        self.target = os.path.realpath(self.path)  # what is replaced: the file a link names
        check_replaceable(self.path)
        try:
            os.makedirs(os.path.dirname(self.target), exist_ok=True)
            remove_stale_temps(self.target)
            fd, self.tmp = open_temp(self.target)
        except OSError as exc:
            raise _named(exc, self.path) from None
        self.file: IO = os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {}))

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
        _fsync_folder(os.path.dirname(self.target))

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
    """``yaml.safe_dump(data)`` (plain types only) to ``path``."""
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


class AtomicNpyWriter:
    """A ``.npy`` of known shape written in row blocks (plain writes, no memory map): ``write(block)`` ...,
    then ``commit()`` (or ``abort()``)."""

    def __init__(self, path: str, shape: Tuple[int, ...], dtype=np.float32):
        self.path, self.shape, self.dtype, self.rows = path, tuple(shape), np.dtype(dtype), 0
        self._out = atomic_write(path)
        self.file = self._out.file
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        try:
            np.lib.format.write_array_header_1_0(self.file, header)
        except BaseException as exc:
            self._out._fail(exc)
            raise

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows + len(block) > self.shape[0]:
            raise ValueError(f"block {block.shape} does not fit {self.shape} after {self.rows} rows")
        try:
            self.file.write(block.tobytes())
        except OSError as exc:
            self._out._fail(exc)
            raise
        self.rows += len(block)

    def commit(self) -> None:
        if self.rows != self.shape[0]:
            self.abort()
            raise ValueError(f"{self.path}: wrote {self.rows} of {self.shape[0]} rows")
        self._out.commit()

    def abort(self) -> None:
        self._out.abort()


# ----------------------------------------------------------------------------- output paths, checked first
def check_utf8(value: Any, flag: str) -> None:
    """`TopKDError` naming ``flag`` when a path from the command line is not valid UTF-8 (Python keeps such
    bytes as surrogates, which config.yaml and manifests cannot hold)."""
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
    """`TopKDError` naming ``flag`` and ``path`` unless ``path`` (a link followed) is missing or a regular file:
    a write replaces what the path names, and a device, FIFO, socket or folder must never be."""
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
