"""One-line errors. A deliberate user error (`TopKDError`, raised at the door) and an environmental failure
(an OSError: disk full, permission, a missing file) are printed by `run_cli` as one ``error:`` line; anything
else is a bug and keeps its traceback."""
import errno
import math
import os
import sys
from typing import Callable, Optional, Sequence


class TopKDError(ValueError):
    """Bad input the user can fix, said in one line (a ValueError, so callers may catch either)."""


class DamagedFileError(TopKDError):
    """A file that fails the check of what its writer recorded (size, SHA-256, a manifest's own checksum)."""


class DivergedError(TopKDError, FloatingPointError):
    """Training met a non-finite value (NaN or inf): the message names where and what to change."""


# errno -> what to do about it
_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere (--save_dir / --run_dir / --out_dir / --out)",
    errno.EDQUOT: "the disk quota is exhausted; free some space or write elsewhere",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another folder",
}


def check_number(value, flag: str, low: Optional[float] = None, low_open: bool = False,
                 high: Optional[float] = None, high_open: bool = False) -> None:
    """`TopKDError` naming ``flag`` unless ``value`` is a finite number within the bounds."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise TopKDError(f"{flag} must be a finite number{' ' + ' and '.join(bounds) if bounds else ''}, got {value}")


def one_line(exc: BaseException) -> str:
    """The message of a user error on one line; of an OSError: the system's reason, the file(s) and a hint."""
    message = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in (exc.filename, exc.filename2)
                 if n is not None]
        hint = _OS_HINTS.get(exc.errno or -1)
        message = exc.strerror + (f" ({' -> '.join(names)})" if names else "") + (f": {hint}" if hint else "")
    return " ".join(message.split()) or type(exc).__name__


class _Stdout:
    """Standard output as `run_cli` passes it on, remembering a failed write: a full device or a closed pipe
    on stdout is then said as such, not as a full disk."""

    def __init__(self, stream):
        self.stream, self.failed = stream, None

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def write(self, text):
        return self._call(self.stream.write, text)

    def flush(self):
        return self._call(self.stream.flush)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            self.failed = exc
            raise


RESUME_HINT = "continue from the last checkpoint with --resume"
# What a user can act on: our deliberate errors, and what the system says about a file (disk full, permission,
# a missing file). Anything else, a ValueError from numpy or torch included, is a bug and keeps its traceback.
ONE_LINE = (TopKDError, OSError)


def run_cli(main: Callable[..., object], argv: Optional[Sequence[str]] = None,
            resume_hint: str = RESUME_HINT) -> int:
    """``main(argv)`` (``main()`` when argv is None) with one-line errors: a `TopKDError` or an OSError ->
    ``error: <message>`` on stderr and status 2; Ctrl-C -> ``interrupted: <resume_hint>`` and status 130; any
    other exception keeps its traceback. Failures raise SystemExit; success returns 0."""
    real = sys.stdout
    sys.stdout = watched = _Stdout(real)
    try:
        main() if argv is None else main(argv)
    except ONE_LINE as exc:
        if isinstance(exc, OSError) and watched.failed is not None and exc.filename is None:
            message = (f"cannot write to standard output ({exc.strerror or type(exc).__name__}): it goes to a full "
                       f"device or a closed pipe; send it elsewhere (e.g. > run.log)")
            real = open(os.devnull, "w")  # the interpreter's flush at exit must not fail again
        else:
            message = one_line(exc)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"\ninterrupted: {resume_hint}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if sys.stdout is watched:
            sys.stdout = real
    return 0
