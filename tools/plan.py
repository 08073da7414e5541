"""Ask the stages what they would do, for the shell scripts: one long-lived process answers every question.

    python -m tools.plan          # reads requests on stdin, one per line; answers one line each on stdout

A request is a stage script and its arguments, shell-quoted (as bash's ``printf '%q '`` writes them), e.g.
``train_teacher.py --model resnet56 --trial 0``. The answer is the stage's own ``--plan`` line,
``<status>\\t<folder>\\t<detail>`` (status: new, finished, partial, conflict, pending, busy; see
`engine.run_folder`), or ``error\\t\\t<message>`` when the stage refuses the arguments. The request
``methods`` answers ``methods\\t\\t<every --distill name and alias>``. Everything the stages print besides
their plan line goes to stderr. `scripts/reproduce/common.sh` runs this as a bash coprocess, so planning a
whole table costs one interpreter start.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STAGES = {"train_teacher.py": "train_teacher", "train_student.py": "train_student",
          "generate_PCD_PI.py": "generate_PCD_PI", "train_ripsnet.py": "train_ripsnet"}


def methods() -> str:
    import train_student
    from distiller.registry import aliases_of

    return " ".join(s for n in train_student.student_methods() for s in [n, *aliases_of(n)])


SEP = "\x1f"


def answer(request: str) -> str:
    """One request line -> one answer line (no newline)."""
    return SEP.join(_answer(request).split("\t", 2))


def _answer(request: str) -> str:
    from topkd_io.errors import USER_ERRORS, one_line

    words = shlex.split(request)
    if not words:
        return "error\t\tempty request"
    if words == ["methods"]:
        return f"methods\t\t{methods()}"
    script, args = words[0], words[1:]
    if script not in STAGES:
        return f"error\t\tunknown stage {script!r}; one of {', '.join(STAGES)}"
    module = importlib.import_module(STAGES[script])
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            module.main([a for a in args if a != "--plan"] + ["--plan"])
    except USER_ERRORS as exc:
        sys.stderr.write(printed.getvalue())
        return f"error\t\t{one_line(exc)}"
    except SystemExit as exc:  # argparse: its message is on stderr already
        sys.stderr.write(printed.getvalue())
        return f"error\t\t{script}: bad arguments (exit {exc.code})"
    lines = printed.getvalue().splitlines()
    sys.stderr.write("".join(line + "\n" for line in lines[:-1]))
    return lines[-1] if lines else "error\t\tthe stage printed no plan"


def serve(stdin: TextIO, stdout: TextIO) -> None:
    for line in stdin:
        stdout.write(answer(line.rstrip("\n")) + "\n")
        stdout.flush()


def main(argv: Optional[Sequence[str]] = None) -> None:
    del argv
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
