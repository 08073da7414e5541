"""Ask the stages what they would do, for the shell scripts: one long-lived process answers every question.

    python -m tools.plan          # reads requests on stdin, one per line; answers one line each on stdout

A request is a stage script and its arguments, shell-quoted (as bash's ``printf '%q '`` writes them), e.g.
``train_teacher.py --model resnet56 --trial 0``. The answer is the stage's own ``--plan`` answer, three
fields separated by the ASCII unit separator ``\x1f`` (a tab-separated line would lose empty fields in
bash's ``read``): ``<status>``, ``<folder>``, ``<detail>`` (status: new, finished, partial, conflict,
pending, busy; see `engine.run_folder`), or ``error``, ``""``, ``<message>`` when the stage refuses the
arguments. Two more requests: ``methods`` answers ``methods``, ``""``, ``<every --distill name and alias>``;
``pretrained <arch> [--no-download]`` answers ``pretrained``, ``<path of torchvision's weight file>``, ``""``
(what ``python -m models.pretrained`` prints). Everything the stages print besides their plan line goes to
stderr. `scripts/reproduce/common.sh` runs this as a bash coprocess, so planning a whole table costs one
interpreter start.
"""
from __future__ import annotations

import argparse
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

import train_student  # noqa: E402
from distiller.registry import aliases_of  # noqa: E402
from models.pretrained import torchvision_weights_file, torchvision_weights_path  # noqa: E402
from topkd_io.errors import USER_ERRORS, one_line  # noqa: E402


STAGES = {"train_teacher.py": "train_teacher", "train_student.py": "train_student",
          "generate_PCD_PI.py": "generate_PCD_PI", "train_ripsnet.py": "train_ripsnet"}


def methods() -> str:
    return " ".join(s for n in train_student.student_methods() for s in [n, *aliases_of(n)])


SEP = "\x1f"


def pretrained(words: List[str]) -> str:
    try:
        with contextlib.redirect_stdout(sys.stderr):
            path = (torchvision_weights_file(words[0]) if "--no-download" in words
                    else torchvision_weights_path(words[0]))
    except (*USER_ERRORS, IndexError) as exc:
        return f"error\t\t{one_line(exc)}"
    return f"pretrained\t{path}\t"


def answer(request: str) -> str:
    """One request line -> one answer line (no newline)."""
    return SEP.join(_answer(request).split("\t", 2))


def _answer(request: str) -> str:
    words = shlex.split(request)
    if not words:
        return "error\t\tempty request"
    if words == ["methods"]:
        return f"methods\t\t{methods()}"
    if words[0] == "pretrained":
        return pretrained(words[1:])
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
    """Takes no options (``--help`` prints this module's description); serves stdin until it closes."""
    argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
