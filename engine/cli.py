"""Entry-point wrapper for the stage scripts: user errors become one `error:` line and exit status 2."""
from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, Optional, Sequence

USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def run_cli(main: Callable[..., object], argv: Optional[Sequence[str]] = None) -> int:
    """Call ``main(argv)`` (or ``main()`` when argv is None) and turn known failures into exit codes.

    ValueError / FileNotFoundError / FloatingPointError -> ``error: <message>`` on stderr, status 2
    (full traceback too when the environment sets ``TOPKD_DEBUG=1``). Ctrl-C -> status 130 with a hint
    that ``--resume`` continues from the last checkpoint. Failures raise ``SystemExit(code)``; success
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
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: continue from the last checkpoint with --resume (or --resume auto)",
              file=sys.stderr)
        raise SystemExit(130) from None
    return 0
