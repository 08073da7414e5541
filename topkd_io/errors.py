"""One-line errors: the exception types a user can act on, and the wrapper that prints them.

Bad user input raises a built-in exception with a one-line message saying what was wrong and how to fix
it (``ValueError``, ``FileNotFoundError``, ``FloatingPointError``, ``OSError``) or `TopKDError`.
`run_cli(main)` prints those as ``error: <message>`` and exits with status 2; any other exception is a bug
and keeps its traceback.
"""
from __future__ import annotations

import errno
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


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the file(s) involved, the system's reason and a hint."""
    names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in (exc.filename, exc.filename2)
             if n is not None]
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1)
    where = f" ({' -> '.join(names)})" if names else ""
    return f"{reason}{where}" + (f": {hint}" if hint else "")


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
    try:
        if argv is None:
            main()
        else:
            main(argv)
    except USER_ERRORS as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: continue from the last checkpoint with --resume (or --resume auto)",
              file=sys.stderr)
        raise SystemExit(130) from None
    return 0
