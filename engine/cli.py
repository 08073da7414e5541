"""Entry-point wrapper for the stage scripts: user errors become one `error:` line and exit status 2."""
from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Callable, Optional, Sequence


class TopKDError(Exception):
    """A failure the user can fix (bad input, a damaged file, ...): printed as one line, no traceback."""


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
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1)
    where = f" ({' -> '.join(names)})" if names else ""
    return f"{reason}{where}" + (f": {hint}" if hint else "")


def run_cli(main: Callable[..., object], argv: Optional[Sequence[str]] = None) -> int:
    """Call ``main(argv)`` (or ``main()`` when argv is None) and turn known failures into exit codes.

    ValueError / FileNotFoundError / FloatingPointError / OSError / `TopKDError` -> ``error: <message>``
    on stderr, status 2 (full traceback too when the environment sets ``TOPKD_DEBUG=1``); any other
    exception is a bug and keeps its traceback. Ctrl-C -> status 130 with a hint that ``--resume``
    continues from the last checkpoint. Failures raise ``SystemExit(code)``; success returns 0, so both
    ``run_cli(main)`` and ``sys.exit(run_cli(main))`` work in a script.
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
        # an OSError raised by the system carries errno/strerror; ours carry a full message
        message = describe_os_error(exc) if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = " ".join(message.split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: continue from the last checkpoint with --resume (or --resume auto)",
              file=sys.stderr)
        raise SystemExit(130) from None
    return 0
