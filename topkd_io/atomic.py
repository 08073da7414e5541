"""The one atomic writer, and the output-path checks that go before it.

`atomic_write(path)` opens a temporary file beside ``path``; on a clean exit the data is flushed and
fsynced, the temporary renamed over ``path`` and the folder fsynced, so a file that exists is complete
and survives a power cut. On any failure the temporary is removed and an earlier file at ``path`` stays
as it was. Only a regular file or a missing path is ever replaced: a folder, device, FIFO or socket at
``path`` is refused (`check_replaceable`). A symbolic link is followed and the regular file it names is
written, as ``open()`` would: the user's link stays, and a link to a device is refused like the device.

Temporaries are named ``<name>.<host>.<pid>.<random>.tmp``: before a write, leftovers of earlier writes
of the same ``path`` are removed, but only those whose writer is gone (same host, process no longer
alive), so two processes never delete each other's temporaries. Files get the mode an ordinary ``open()``
would give (0666 minus the umask, 0644 by default), not mkstemp's private 0600.

Wrappers: `write_text`, `write_yaml`, `save_npy`, `save_npz`, `save_torch` (which also turns the errors
of torch's zip writer, a RuntimeError that names no file, into an OSError naming ``path``).
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
import time
from typing import IO, Any, Tuple

import numpy as np
import torch
import yaml

TMP_SUFFIX = ".tmp"
# A temporary whose name carries no owner (written by an older version) is removed only when this old.
UNOWNED_TMP_AGE_S = 600.0


def host_tag() -> str:
    """Six hex digits naming this host (temporaries and locks of other hosts are never judged by PID)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def current_umask() -> int:
    """The process umask (read from /proc where possible; otherwise set and restored at once)."""
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


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_gone(tmp: str, base: str) -> bool:
    """Whether the writer of temporary ``tmp`` (a leftover of target ``base``) no longer runs."""
    middle = os.path.basename(tmp)[len(base) + 1:-len(TMP_SUFFIX)]
    parts = middle.split(".")
    if len(parts) >= 3 and parts[1].isdigit():
        host, pid = parts[0], int(parts[1])
        return host == host_tag() and not pid_alive(pid)
    try:  # no owner in the name: an older writer's; removed once it is clearly abandoned
        return time.time() - os.path.getmtime(tmp) > UNOWNED_TMP_AGE_S
    except OSError:
        return False


def remove_stale_temps(path: str) -> int:
    """Delete temporaries ``<name>.*.tmp`` of earlier writes of ``path`` whose writer is gone -> how many."""
    folder, base = os.path.split(os.path.abspath(path))
    removed = 0
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(base) + ".*" + TMP_SUFFIX)):
        if not _owner_gone(stale, base):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
            removed += 1
    return removed


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (skipped where folders cannot be opened, e.g. some file systems)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _disk_state_errno(path: str) -> int:
    """ENOSPC when the file system of ``path``'s folder has (almost) no free blocks left, else EIO."""
    with contextlib.suppress(OSError):
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
        if st.f_bavail * st.f_frsize < 1 << 20:
            return errno.ENOSPC
    return errno.EIO


def _named(exc: BaseException, path: str) -> BaseException:
    """An error raised while writing ``path`` -> an OSError naming ``path`` when the original names no file.

    torch's zip writer reports a failed write (a full disk, a quota) as a RuntimeError
    (``[enforce fail at inline_container.cc...] ... file write failed``); it becomes an OSError with the
    errno of the file object's own OSError it carries as context, else the one the disk state suggests
    (ENOSPC when the folder's file system has no free blocks left, EIO otherwise)."""
    if isinstance(exc, OSError):
        if exc.filename is None and exc.errno:
            return OSError(exc.errno, f"cannot write {os.path.basename(path)} ({exc.strerror})", path)
        if exc.filename is None and not exc.errno:
            # numpy's short write ("20480 requested and 992 written") carries no errno: say what the disk
            # state suggests, naming the file
            code = _disk_state_errno(path)
            return OSError(code, f"cannot write {os.path.basename(path)} ({os.strerror(code)}: only part of the "
                                 f"data was written)", path)
        return exc
    text = " ".join(str(exc).split())
    if isinstance(exc, RuntimeError) and ("PytorchStreamWriter" in text or "inline_container" in text
                                          or "file write failed" in text):
        cause = exc.__context__  # the file object's own OSError, when torch wrote through one
        code = cause.errno if isinstance(cause, OSError) and cause.errno else _disk_state_errno(path)
        reason = os.strerror(code)
        return OSError(code, f"cannot write {os.path.basename(path)} ({reason}: the writer stopped half-way)", path)
    return exc


def open_temp(path: str):
    """``(fd, temporary path)`` for an atomic write of ``path``: created beside it (same file system, so the
    rename is atomic), named after its owner, with the umask's mode."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.{host_tag()}.{os.getpid()}.",
                               suffix=TMP_SUFFIX, dir=folder)
    try:
        os.fchmod(fd, file_mode())
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return fd, tmp


class atomic_write:
    """``with atomic_write(path) as f: ...`` writes ``path`` all or nothing (see the module docstring).

    ``mode`` is ``"wb"`` (default) or ``"w"`` (text, ``encoding``). The folder is created when missing.
    A failure inside the block removes the temporary and re-raises; OSErrors (and torch's zip-writer
    RuntimeError) come back as an OSError naming ``path``. The previous file at ``path``, if any, is kept.

    For a file written over time (stage 2's shards), use it without ``with``: ``w = atomic_write(path)``,
    write to ``w.file``, then ``w.commit()`` or ``w.abort()``.
    """

    def __init__(self, path: Any, mode: str = "wb", encoding: str = "utf-8"):
        if mode not in ("wb", "w"):
            raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
        self.path = os.path.abspath(os.fspath(path))  # named in errors
        self.target = os.path.realpath(self.path)  # what is replaced: the file a link names
        check_replaceable(self.path)
        try:
            os.makedirs(os.path.dirname(self.target), exist_ok=True)
            remove_stale_temps(self.target)
            fd, self.tmp = open_temp(self.target)
        except OSError as exc:
            raise _named(exc, self.path) from None
        try:
            self.file: IO = os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {}))
        except BaseException:
            os.close(fd)
            self._remove_tmp()
            raise

    def _remove_tmp(self) -> None:
        with contextlib.suppress(OSError):
            os.remove(self.tmp)

    def commit(self) -> None:
        """Flush, fsync, rename over the target and fsync the folder; on failure, abort and raise."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            check_replaceable(self.path)  # again: something may have been put there meanwhile
            os.replace(self.tmp, self.target)
        except BaseException as exc:
            self.abort()
            named = _named(exc, self.path)
            if named is exc:
                raise
            raise named from None
        _fsync_folder(os.path.dirname(self.target))

    def abort(self) -> None:
        """Drop the temporary; the target is left as it was."""
        with contextlib.suppress(OSError):
            self.file.close()
        self._remove_tmp()

    def __enter__(self) -> IO:
        return self.file

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            self.commit()
            return False
        self.abort()
        named = _named(exc, self.path)
        if named is not exc:
            raise named from None
        return False


def write_text(path: Any, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_yaml(path: Any, data: Any, sort_keys: bool = False) -> None:
    """Write ``data`` as YAML (plain types only: ``yaml.safe_dump``) to ``path`` atomically."""
    write_text(path, yaml.safe_dump(data, sort_keys=sort_keys))


def save_npy(path: Any, array: np.ndarray) -> None:
    """``np.save`` (no pickles) to ``path`` atomically."""
    with atomic_write(path) as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def save_npz(path: Any, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed, no pickles) of ``arrays`` to ``path`` atomically."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def save_torch(obj: Any, path: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically; a failed write (full disk ...) is an OSError naming ``path``
    and leaves the previous file in place."""
    with atomic_write(path) as f:
        torch.save(obj, f)


class AtomicNpyWriter:
    """A ``.npy`` file of known shape written sequentially in row blocks, renamed to ``path`` on ``commit()``.

    Plain file writes through `topkd_io.atomic_write` (no memory map), so the written data never stays
    resident in the process. Usage: ``w = AtomicNpyWriter(path, shape); w.write(block); ...; w.commit()``
    (``abort()`` on error).
    """

    def __init__(self, path: str, shape: Tuple[int, ...], dtype=np.float32):
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)
        self._out = atomic_write(path)
        self.file = self._out.file
        try:
            np.lib.format.write_array_header_1_0(
                self.file, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                            "shape": self.shape})
        except BaseException:
            self._out.abort()
            raise
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows + len(block) > self.shape[0]:
            raise ValueError(f"block {block.shape} does not fit {self.shape} after {self.rows} rows")
        try:
            self.file.write(block.tobytes())
        except OSError as exc:
            self.abort()
            raise _named(exc, self.path) from None
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
    """ValueError naming ``flag`` when the text (a path from the command line) is not valid UTF-8: Python
    keeps such bytes as surrogates, which cannot be written into config.yaml or a manifest."""
    if not isinstance(value, str):
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = os.fsencode(value)
        bad = os.fsencode(value[exc.start:exc.end])[:1]
        raise ValueError(f"{flag} {raw!r} is not valid UTF-8 text (byte 0x{bad[0]:02x}); use a name in UTF-8 "
                         f"(rename the folder or file)") from None


def check_output_dir(path: Any, flag: str) -> str:
    """Make sure ``path`` is (or can become) a writable folder; ValueError naming ``flag`` otherwise."""
    path = os.fspath(path)
    check_utf8(path, flag)
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


_NOT_REGULAR = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a loop of links"}


def check_replaceable(path: Any, flag: str = "") -> None:
    """ValueError (one line naming ``flag`` and ``path``) unless ``path`` is missing or a regular file (a link
    is followed): a write replaces what the path names, and a device, FIFO, socket or folder must never be."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return  # missing (a dangling link: the file it names is created); else the write says what is wrong
        mode = stat.S_IFLNK
    if not stat.S_ISREG(mode):
        kind = _NOT_REGULAR.get(stat.S_IFMT(mode), "a special file")
        raise ValueError(f"{flag + ' ' if flag else ''}{path} is {kind}, not a regular file; writing would replace "
                         f"it: pass the path of a file")


def check_output_file(path: Any, flag: str) -> str:
    """``path`` is to be written as a file: missing or a regular file (`check_replaceable`), and its folder
    writable; ValueError naming ``flag`` otherwise."""
    path = os.fspath(path)
    check_replaceable(path, flag)
    check_output_dir(os.path.dirname(os.path.abspath(path)), f"folder of {flag}")
    return path
