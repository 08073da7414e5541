"""Ask the stages what they would do, for the shell scripts: one long-lived process answers every question.

    python -m tools.plan          # reads requests on stdin, one per line; answers one line each on stdout

A request is a stage script and its arguments, shell-quoted (as bash's ``printf '%q '`` writes them), e.g.
``train_teacher.py --model resnet56 --trial 0``. The answer is the stage's own ``--plan`` answer, three
fields separated by the ASCII unit separator ``\x1f`` (a tab-separated line would lose empty fields in
bash's ``read``): ``<status>``, ``<folder>``, ``<detail>`` (status: new, finished, partial, conflict,
pending, busy; see `engine.record`), or ``error``, ``""``, ``<message>`` when the stage refuses the
arguments. Two more requests: ``methods`` answers ``methods``, ``""``, ``<every --distill name and alias>``;
``pretrained <arch> [--no-download]`` answers ``pretrained``, ``<path of torchvision's weight file>``, ``""``
(what ``python -m models.pretrained`` prints). ``route <stage script> <args...>`` answers ``route``, ``""``,
then the args that stage's parser takes, one field each (a flag and the words after it up to the next flag
are one option; a note on stderr names those left out), or an error when no stage takes one of them. A
request that cannot be read (an unbalanced quote) is answered with an error, and the next one is served.
Everything the stages print besides their plan line goes to stderr. `scripts/reproduce/common.sh` runs this
as a bash coprocess, so planning a whole table costs one interpreter start.
"""
import argparse
import contextlib
import functools
import importlib
import io
import re
import shlex
import sys
from typing import List, Optional, Sequence, TextIO

import train_student
from distiller.registry import aliases_of
from models.pretrained import torchvision_weights_file, torchvision_weights_path
from topkd_io.errors import ONE_LINE, one_line


STAGES = {"train_teacher.py": "train_teacher", "generate_PCD_PI.py": "generate_PCD_PI",
          "train_ripsnet.py": "train_ripsnet", "train_student.py": "train_student"}


def methods() -> str:
    return " ".join(s for n in train_student.student_methods() for s in [n, *aliases_of(n)])


SEP = "\x1f"


def pretrained(words: List[str]) -> str:
    try:
        with contextlib.redirect_stdout(sys.stderr):
            path = (torchvision_weights_file(words[0]) if "--no-download" in words
                    else torchvision_weights_path(words[0]))
    except (*ONE_LINE, IndexError) as exc:
        return f"error\t\t{one_line(exc)}"
    return f"pretrained\t{path}\t"


NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?|-\.\d+")  # a negative number is a value, not a flag


@functools.lru_cache(maxsize=None)
def stage_parser(script: str) -> argparse.ArgumentParser:
    parser = importlib.import_module(STAGES[script]).build_parser()
    parser.prog = script
    return parser


def takes(script: str, option: List[str]) -> bool:
    """Whether the stage's parser takes ``option`` (a flag and its values). A value it refuses counts as
    taken: the stage says what is wrong when asked."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return not stage_parser(script).parse_known_args(option)[1]
        except (SystemExit, ValueError):  # argparse's exit, or an action's own ValueError (EpochsAction)
            return True


def route(words: List[str]) -> str:
    """``route <stage> <args...>`` -> the args the stage takes (see the module's description)."""
    if not words or words[0] not in STAGES:
        return f"error\t\troute: name a stage first, one of {', '.join(STAGES)}"
    options: List[List[str]] = []
    for word in words[1:]:
        if SEP in word or "\n" in word:
            return f"error\t\tthe argument {word!r} holds a control character; drop it"
        if not options or word.startswith("-") and not NUMBER.fullmatch(word):
            options.append([word])
        else:
            options[-1].append(word)
    taken = []
    for option in options:
        stages = [s for s in STAGES if takes(s, option)]
        if not stages:
            return (f"error\t\tthe argument {shlex.join(option)} is an option of no stage ({', '.join(STAGES)}); "
                    f"check its spelling")
        if words[0] in stages:
            taken += option
        else:
            sys.stderr.write(f"note: {shlex.join(option)} goes to {', '.join(stages)}, not to {words[0]}, which "
                             f"has no such option\n")
    return "route\t\t" + SEP.join(taken)


def answer(request: str) -> str:
    """One request line -> one answer line (no newline)."""
    return SEP.join(_answer(request).split("\t", 2))


def _answer(request: str) -> str:
    try:
        words = shlex.split(request)
    except ValueError as exc:  # e.g. an unbalanced quote
        return f"error\t\tunreadable request ({exc}); write it as bash's printf '%q ' quotes words"
    if not words:
        return "error\t\tempty request"
    if words == ["methods"]:
        return f"methods\t\t{methods()}"
    if words[0] == "pretrained":
        return pretrained(words[1:])
    if words[0] == "route":
        return route(words[1:])
    script, args = words[0], words[1:]
    if script not in STAGES:
        return f"error\t\tunknown stage {script!r}; one of {', '.join(STAGES)}"
    module = importlib.import_module(STAGES[script])
    printed, errors = io.StringIO(), io.StringIO()
    argv0, sys.argv[0] = sys.argv[0], script  # argparse names the stage in its usage and error lines
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            module.main([a for a in args if a != "--plan"] + ["--plan"])
    except ONE_LINE as exc:
        lines, reply = printed.getvalue().splitlines(), f"error\t\t{script}: {one_line(exc)}"
    except SystemExit as exc:  # argparse: its usage and error lines are on stderr
        said = errors.getvalue().strip().splitlines() or [f"{script}: exit {exc.code}"]
        lines, reply = printed.getvalue().splitlines(), f"error\t\t{said[-1]}"
    else:
        lines = printed.getvalue().splitlines()
        reply = lines.pop() if lines else "error\t\tthe stage printed no plan"
    finally:
        sys.argv[0] = argv0
    sys.stderr.write(errors.getvalue() + "".join(line + "\n" for line in lines))
    return reply


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
