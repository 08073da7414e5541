"""One-line errors: the exception types a user can act on, and the wrapper that prints them.

Bad user input raises a built-in exception with a one-line message saying what was wrong and how to fix
it (``ValueError``, ``FileNotFoundError``, ``FloatingPointError``, ``OSError``) or `TopKDError`.
`run_cli(main)` prints those as ``error: <message>`` and exits with status 2; any other exception is a bug
and keeps its traceback.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import sys
import traceback
from typing import Callable, Optional, Sequence


class TopKDError(Exception):
    """A failure the user can fix (bad input, a damaged file, ...): printed as one line, no traceback."""


class DamagedFileError(TopKDError, ValueError):
    """A file that fails the check of what its writer recorded (size, SHA-256, a field's checksum)."""


USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, OSError, TopKDError)

# errno -> what to do about it (the message names the file when the OS told us).
_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere (--save_dir / --run_dir / --out_dir / --out)",
    errno.EDQUOT: "the disk quota is exhausted; free some space or write elsewhere",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.EISDIR: "it is a folder; pass a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
    errno.EEXIST: "it already exists",
    errno.ENOENT: "no such file or folder; check the path",
}


def check_number(value, flag: str, low: Optional[float] = None, low_open: bool = False,
                 high: Optional[float] = None, high_open: bool = False) -> None:
    """ValueError naming ``flag`` (one line) unless ``value`` is a finite number within the given bounds
    (``low_open`` / ``high_open``: the bound itself excluded). NaN and infinities are always refused."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    want = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{flag} must be {want}, got {value}")


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the file(s) involved, the system's reason and a hint."""
    names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in (exc.filename, exc.filename2)
             if n is not None]
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1)
    where = f" ({' -> '.join(names)})" if names else ""
    return f"{reason}{where}" + (f": {hint}" if hint else "")


class _WatchedStdout:
    """Standard output as run_cli sees it: every call passes through, and a failed write or flush is
    remembered, so that a full /dev/full or a closed pipe on stdout is not reported as a full disk."""

    def __init__(self, stream):
        self._stream, self.failed = stream, None

    def _call(self, name, *args):
        try:
            return getattr(self._stream, name)(*args)
        except OSError as exc:
            self.failed = exc
            raise

    def write(self, text):
        return self._call("write", text)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _stdout_message(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return (f"cannot write to standard output ({reason}): the output goes to a full device or a closed pipe; "
            f"send it elsewhere (e.g. > run.log); the run stopped at that message")


def one_line(exc: BaseException) -> str:
    """The message of a user error on one line."""
    message = describe_os_error(exc) if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(message.split()) or type(exc).__name__


def run_cli(main: Callable[..., object], argv: Optional[Sequence[str]] = None) -> int:
    """Call ``main(argv)`` (or ``main()`` when argv is None) and turn known failures into exit codes.

    `USER_ERRORS` -> ``error: <message>`` on stderr, status 2 (full traceback too when the environment sets
    ``TOPKD_DEBUG=1``); any other exception is a bug and keeps its traceback. Ctrl-C -> status 130 with a
    hint that ``--resume`` continues from the last checkpoint. Failures raise ``SystemExit(code)``; success
    returns 0, so both ``run_cli(main)`` and ``sys.exit(run_cli(main))`` work in a script.
    """
    debug = os.environ.get("TOPKD_DEBUG", "") not in ("", "0")
    real_stdout = sys.stdout
    watched = sys.stdout = _WatchedStdout(real_stdout)
    try:
        if argv is None:
            main()
        else:
            main(argv)
    except USER_ERRORS as exc:
        if debug:
            traceback.print_exc()
        if watched.failed is exc or (isinstance(exc, OSError) and watched.failed is not None and exc.filename is None):
            message = _stdout_message(exc)
            with contextlib.suppress(OSError):
                real_stdout = open(os.devnull, "w")  # the interpreter's flush at exit must not fail again
        else:
            message = one_line(exc)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: continue from the last checkpoint with --resume (or --resume auto)",
              file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if sys.stdout is watched:
            sys.stdout = real_stdout
    return 0
