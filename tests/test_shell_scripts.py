"""The shell scripts of scripts/: their editable values are the Python entry points' own (the recipes of
engine/config.py, the methods' declared defaults, the parsers' defaults), the small-network learning rate and
the other recipes survive them, their number variables are checked before any stage starts, and the
reproduction scripts' planner (`tools.plan`) plans a whole table in one process, routes each argument to the
stages that take it and survives a malformed request.

The stage commands are caught by a stand-in for python (``PY``) that writes its arguments to a file, so no
stage runs here."""
from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from engine.config import RECIPES, parse_config

ROOT = Path(__file__).resolve().parents[1]
# script -> (stage module, the option holding the trained architecture: parse_config's arch_key; None: a
# stage without recipes)
STAGE_SCRIPTS = {
    "train_teacher.sh": ("train_teacher", "model"),
    "generate_PCD_PI.sh": ("generate_PCD_PI", None),
    "train_ripsnet.sh": ("train_ripsnet", None),
    "train_student.sh": ("train_student", "model_s"),
    "tgd/generate_image_PI.sh": ("generate_image_PI", None),
    "tgd/train_teachers.sh": ("train_teacher", "model"),
    "tgd/train_student.sh": ("train_student", "model_s"),
}
# Variables that choose what a script trains (the model pair, the data set), not how: the Python entry points
# have their own defaults there. Variables that set no option of the stage: TRIALS, SETTING (a preset), RECIPE
# (checked against the recipe the run takes), SMALL_ARCH_LR (checked against the recipe's small-network lr).
CHOICES = {"MODEL", "MODEL_T", "MODEL_S", "DATASET"}
NOT_OPTIONS = {"TRIALS", "SETTING", "RECIPE", "SMALL_ARCH_LR"}
ASSIGNMENT = re.compile(r'^([A-Z][A-Z0-9_]*)="\$\{\1:-(.*?)\}"(?=\s|$)', re.M)


def shell_defaults(script: str) -> Dict[str, str]:
    """``NAME -> default`` of the script's ``NAME="${NAME:-default}"`` lines (``${OTHER:-x}`` -> ``x``); defaults
    taken from another variable or a command (``$TRIAL``, ``$(nproc)``) are left out."""
    out = {}
    for name, value in ASSIGNMENT.findall((ROOT / "scripts" / script).read_text()):
        while (inner := re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value)):
            value = inner.group(1)
        if not value.startswith("$"):
            out[name] = value
    return out


@pytest.fixture()
def stub_py(tmp_path):
    """``(env, commands)``: an environment whose PY writes its arguments to a log instead of running python,
    with none of the scripts' variables set; ``commands()`` -> the logged commands, the words after the
    ``.py`` script each."""
    log = tmp_path / "commands.log"
    stub = tmp_path / "python"
    stub.write_text(f"#!/bin/bash\nprintf '%q ' \"$@\" >> {shlex.quote(str(log))}\necho >> {shlex.quote(str(log))}\n")
    stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PY": str(stub)}

    def commands() -> List[List[str]]:
        lines = log.read_text().splitlines() if log.exists() else []
        out = []
        for words in map(shlex.split, lines):
            at = next(i for i, w in enumerate(words) if w.endswith(".py"))
            out.append(words[at + 1:])
        return out

    return env, commands


def issue(script: str, env: Dict[str, str], *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def parser_of(module: str):
    import importlib

    return importlib.import_module(module).build_parser()


def option_of(parser, name: str):
    """The parser's action that a shell variable sets: its flag is the name in lower case (``RIPS_`` dropped)."""
    names = {name.lower(), name.lower().removeprefix("rips_")}
    return next((a for a in parser._actions if any(s.lstrip("-").lower() in names for s in a.option_strings)), None)


def python_default(module: str, cfg, action):
    """What the Python entry point takes for this option when it is not given: the recipe's value, the chosen
    method's (or the topology term's) declared default, else the parser's default."""
    if module in ("train_teacher", "train_student") and action.dest in RECIPES[cfg.recipe]:
        return RECIPES[cfg.recipe][action.dest]
    if module == "train_student":
        import train_student
        from distiller import canonical_name
        from distiller.options import declared, default_of
        from distiller.topkd import TopologyTerm

        method = train_student.student_methods()[canonical_name(cfg.distill)]
        for owner in (method, TopologyTerm):
            for opt in declared(owner):
                if opt.name == action.dest:
                    return default_of(owner, opt)
    return action.default


def as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


@pytest.mark.parametrize("script", sorted(STAGE_SCRIPTS))
def test_stage_script_values_are_the_python_defaults(script, stub_py, tmp_path):
    """Each stage script starts with readable values (EPOCHS=240, LR=0.05, ...) that the Python entry point
    also takes by itself; the command the script issues carries them."""
    module, arch_key = STAGE_SCRIPTS[script]
    env, commands = stub_py
    if script == "tgd/train_student.sh":  # the two teachers have no default
        env.update(PATH_T="t.pth", PATH_T2="t2.pth")
    done = issue(script, env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    argv = commands()[-1]  # (TGD's teachers: the PI teacher, whose recipe is TGD's whatever the data set)
    parser = parser_of(module)
    # parse_config refuses a RECIPE other than the one the run takes (--recipe_check)
    cfg = parse_config(parser, argv, arch_key=arch_key) if arch_key else parser.parse_args(argv)
    defaults = shell_defaults(script)
    compared = set()
    for name, text in defaults.items():
        if not text or name in CHOICES | NOT_OPTIONS:
            continue
        action = option_of(parser, name)
        assert action is not None, f"{script}: {name} names no option of {module}.py"
        flag = action.option_strings[-1]
        from_text = getattr(parser.parse_args(argv + [flag, *shlex.split(text)]), action.dest)
        issued = getattr(cfg, action.dest)
        assert as_list(from_text) == as_list(issued), f"{script}: {name}={text} is not what the script passes"
        want = python_default(module, cfg, action)
        if want is None:  # the stage finds it (a teacher, a trial, a seed from the trial): nothing to agree on
            continue
        if script == "train_student.sh" and name in ("ALPHA", "DELTA", "OPERATOR"):
            continue  # the paper's setting, checked against the reproduction table below
        assert as_list(from_text) == as_list(want), f"{script}: {name}={text}, but {module}.py takes {want!r}"
        compared.add(action.dest)
    if arch_key:
        assert defaults["RECIPE"] == cfg.recipe
        assert set(RECIPES[cfg.recipe]) - {"small_arch_lr"} <= compared, f"{script} lacks some of the recipe's values"
        if "SMALL_ARCH_LR" in defaults:
            assert float(defaults["SMALL_ARCH_LR"]) == RECIPES[cfg.recipe]["small_arch_lr"]
    if script == "train_student.sh":  # resnet56 -> resnet20, the first row of the homogeneous table
        table = (ROOT / "scripts" / "reproduce" / "cifar100_homogeneous.sh").read_text()
        row = re.search(r'^  "(resnet56 resnet20 .*)"$', table, re.M).group(1).split()
        assert row == [defaults[n] for n in ("MODEL_T", "MODEL_S", "LR", "ALPHA", "DELTA", "OPERATOR")]


def test_teacher_script_runs_the_python_recipe(stub_py, tmp_path):
    """The teacher script's command resolves to the configuration train_teacher.py takes by itself; a
    ShuffleNet still gets the small-network lr 0.01 (a script passing --lr 0.05 would give it 0.05), and a
    variable set in the environment wins."""
    from engine.record import identity_of

    env, commands = stub_py
    for model, lr in (("resnet56", None), ("shufflev1", None), ("MobileNetV2", None), ("resnet56", "0.02")):
        run_env = dict(env, MODEL_T=model, **({"LR": lr} if lr else {}))
        assert issue("train_teacher.sh", run_env, cwd=tmp_path).returncode == 0
    parser = parser_of("train_teacher")
    runs = [parse_config(parser, argv) for argv in commands()]
    assert [c.lr for c in runs] == [0.05, 0.01, 0.01, 0.02]
    own = parse_config(parser, ["--model", "resnet56", "--dataset", "cifar100"])
    def result(cfg):
        return identity_of(parser, vars(cfg), {}).options

    assert result(runs[0]) == result(own)


@pytest.mark.parametrize("script, env, recipe", [
    ("train_teacher.sh", {"DATASET": "imagenet"}, "imagenet"),
    ("train_teacher.sh", {}, "tgd"),  # TGD's PI teacher: --input pi
    ("train_student.sh", {"DISTILL": "tgd"}, "tgd"),
])
def test_other_recipes_are_not_overridden_by_the_script(script, env, recipe, stub_py, tmp_path):
    """The scripts hold the CIFAR recipe: a data set, input or method with another recipe is refused in one
    line that says what to set, instead of training ImageNet for 240 epochs at lr 0.05."""
    module, arch_key = STAGE_SCRIPTS[script]
    base, commands = stub_py
    extra = ["--input", "pi"] if recipe == "tgd" and module == "train_teacher" else []
    assert issue(script, dict(base, **env), *extra, cwd=tmp_path).returncode == 0
    (argv,) = commands()
    parser = parser_of(module)
    with pytest.raises(ValueError, match=rf"takes the {recipe} recipe .* set RECIPE={recipe} .*EPOCHS="
                                         rf"{RECIPES[recipe]['epochs']} .*LR={RECIPES[recipe]['lr']}") as err:
        parse_config(parser, argv, arch_key=arch_key)
    assert "\n" not in str(err.value)
    assert parse_config(parser, argv + ["--recipe", "cifar"], arch_key=arch_key).epochs == 240  # asked for


STAGE_LOOPS = [("train_teacher.sh", "TRIALS"), ("train_teacher.sh", "TRIAL"), ("train_student.sh", "TRIALS"),
               ("train_student.sh", "TRIAL"), ("train_student.sh", "SEED"), ("tgd/train_student.sh", "TRIALS"),
               ("tgd/train_teachers.sh", "TRIAL"), ("generate_PCD_PI.sh", "TEACHER_TRIAL"),
               ("reproduce/cifar100_homogeneous.sh", "TRIALS"), ("reproduce/imagenet.sh", "NGPUS")]


@pytest.mark.parametrize("script, name", STAGE_LOOPS)
@pytest.mark.parametrize("value", ["abc", "a[$(touch injected)]", "08"])
def test_number_variables_are_checked_before_any_stage(script, name, value, stub_py, tmp_path):
    """`TRIALS=abc` ended in `abc: unbound variable`, in a reproduction script after earlier stages had
    started; text in a shell arithmetic context is evaluated as an expression (a command substitution in an
    array index runs)."""
    env, commands = stub_py
    env.update({name: value, "PATH_T": "t.pth", "PATH_T2": "t2.pth"})
    done = issue(script, env, cwd=tmp_path)
    assert done.returncode == 2
    assert re.fullmatch(rf"{name} must be a whole number >= [01] \(e\.g\. {name}=\d+\), got '{re.escape(value)}'",
                        done.stderr.strip()), done.stderr
    assert commands() == [] and not (tmp_path / "injected").exists() and not (ROOT / "injected").exists()


# ------------------------------------------------------------------------------------------------ the planner
def ask(*requests: str) -> List[List[str]]:
    from tools.plan import serve

    out = io.StringIO()
    serve(io.StringIO("".join(r + "\n" for r in requests)), out)
    return [line.split("\x1f") for line in out.getvalue().splitlines()]


def test_planner_answers_a_malformed_request_and_keeps_serving(capsys):
    """An unbalanced quote ended the planner with a `No closing quotation` traceback, and later requests
    went unanswered."""
    first, second = ask('train_teacher.py --model "resnet56', "methods")
    assert first[0] == "error" and "No closing quotation" in first[2]
    assert second[0] == "methods" and " kd " in f" {second[2]} "


def test_planner_routes_each_argument_to_the_stages_that_take_it(capsys):
    """`imagenet.sh --image_size 16` gave --image_size to train_ripsnet.py, which refused it with a usage line
    naming plan.py."""
    ripsnet, teacher, nobody, direct = ask(
        "route train_ripsnet.py --image_size 16 --device cpu --epochs 2",
        "route train_teacher.py --image_size 16 --device cpu --lr_decay_epochs 3 4 --layer -1",
        "route train_teacher.py --device cpu --image_sise 16",
        "train_ripsnet.py --data_dir x --image_size 16")
    assert ripsnet == ["route", "", "--device", "cpu", "--epochs", "2"]
    # --layer -1 is generate_PCD_PI.py's: a negative number stays the flag's value
    assert teacher == ["route", "", "--image_size", "16", "--device", "cpu", "--lr_decay_epochs", "3", "4"]
    assert nobody[0] == "error" and "--image_sise 16 is an option of no stage" in nobody[2]
    assert direct[0] == "error" and direct[2] == "train_ripsnet.py: error: unrecognized arguments: --image_size 16"
    err = capsys.readouterr().err
    assert ("--image_size 16 goes to train_teacher.py, generate_PCD_PI.py, train_student.py, not to "
            "train_ripsnet.py") in err
    assert "--layer -1 goes to generate_PCD_PI.py, not to train_teacher.py" in err
    assert "usage: train_ripsnet.py" in err and "plan.py" not in err


def reproduce(script: str, tmp_path: Path, *args: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PY": sys.executable, "T_ROOT": str(tmp_path / "t"), "S_ROOT": str(tmp_path / "s"),
            "PCD_ROOT": str(tmp_path / "pcd"), "RIPS_ROOT": str(tmp_path / "rips"), **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / "reproduce" / script), *args], env=full, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_reproduce_plan_is_one_planner_process(tmp_path):
    """`cifar100_homogeneous.sh --plan` started every stage with --plan (253 s) and ended with rc 2 from the
    results step; it is the script's own plan now: one python process for the whole table, exit 0."""
    starts = tmp_path / "starts"
    py = tmp_path / "python"
    py.write_text(f"#!/bin/bash\necho start >> {shlex.quote(str(starts))}\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    py.chmod(0o755)
    began = time.monotonic()
    done = reproduce("cifar100_homogeneous.sh", tmp_path, "--plan", "--device", "cpu", PY=str(py), TRIALS="2")
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert starts.read_text().splitlines() == ["start"]  # the planner, nothing else
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    pairs = re.findall(r'^  "(\S+) (\S+) ', (ROOT / "scripts/reproduce/cifar100_homogeneous.sh").read_text(), re.M)
    assert len(lines) == len(pairs) * (3 + 2)  # teacher, stage 2, RipsNet, a student per trial
    # nothing exists yet: the teacher waits for its data (no CIFAR-100 here), every later stage for its input
    assert {status for status, *_ in lines} == {"pending"} and all(len(line) == 4 for line in lines)
    assert lines[0][3].endswith("input not there yet: data_root")
    t, s = pairs[0]
    assert [what for _, what, _, _ in lines[:5]] == [
        f"teacher {t}", f"stage 2 for {t}", f"RipsNet {t}/mean", f"student {s} <- {t} (kd, trial 0)",
        f"student {s} <- {t} (kd, trial 1)"]
    assert not (tmp_path / "t").exists() and not (tmp_path / "results").exists()  # nothing ran
    assert took < 60, f"the plan took {took:.0f} s"


@pytest.mark.slow
def test_reproduce_passes_an_option_only_to_the_stages_that_take_it(tmp_path):
    """`imagenet.sh --image_size 16` now plans (train_ripsnet.py gets no --image_size, and a note says so); an
    option of no stage is refused in one line before anything runs; the training stages run under the
    torchrun of PY's environment (`torchrun: command not found` without an activated .venv)."""
    done = reproduce("imagenet.sh", tmp_path, "--image_size", "16", "--device", "cpu", DRY_RUN="1",
                     PAIRS_FILTER="resnet34", TEACHER_WEIGHTS="")
    assert done.returncode == 0, done.stderr
    commands = {next(w for w in c if w.endswith(".py")): c for c in map(shlex.split, done.stdout.splitlines())}
    assert "--image_size" not in commands["train_ripsnet.py"] and "--device" in commands["train_ripsnet.py"]
    assert all(commands[s][commands[s].index("--image_size") + 1] == "16"
               for s in ("train_teacher.py", "generate_PCD_PI.py", "train_student.py"))
    assert commands["train_student.py"][:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--image_size 16 goes to train_teacher.py, generate_PCD_PI.py, train_student.py, not to train_ripsnet.py" \
        in done.stderr
    done = reproduce("imagenet.sh", tmp_path, "--device", "cpu", "--imagesize", "16", DRY_RUN="1")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "[reproduce] the argument --imagesize 16 is an option of no stage (train_teacher.py, generate_PCD_PI.py, "
        "train_ripsnet.py, train_student.py); check its spelling"]


@pytest.mark.slow
def test_reproduce_checks_every_stage_before_the_first_runs(tmp_path):
    """A value that only the student refuses (S_EPOCHS=0) stopped the table after the teacher, stage 2 and the
    RipsNet had been issued; a run now plans the whole table first."""
    issued = tmp_path / "issued"
    py = tmp_path / "python"  # the planner runs; any stage is only logged
    py.write_text(f"#!/bin/bash\nif [[ \"$1 $2\" == \"-m tools.plan\" ]]; then\n"
                  f"  exec {shlex.quote(sys.executable)} \"$@\"\nfi\necho \"$*\" >> {shlex.quote(str(issued))}\n")
    py.chmod(0o755)
    done = reproduce("cifar100_homogeneous.sh", tmp_path, PY=str(py), PAIRS_FILTER="resnet56", S_EPOCHS="0")
    assert done.returncode == 2 and not issued.exists()
    assert done.stderr.strip().splitlines()[-1] == \
        "[reproduce] train_student.py: --epochs must be a positive integer, got 0"


@pytest.mark.slow
def test_reproduce_plans_for_the_processes_it_launches(tmp_path, monkeypatch):
    """imagenet.sh planned each stage in one process (world size 1) and trained under torchrun with NGPUS: the
    recorded world size then disagreed with the plan, so a rerun met a `conflict`. The planner answers for the
    launcher's process count."""
    from test_run_identity import _tree

    _tree(tmp_path / "imagenet", ("cat", "dog"), 2, seed=0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    done = reproduce("imagenet.sh", tmp_path, "--plan", "--device", "cpu", NGPUS="2", PAIRS_FILTER="resnet34",
                     TEACHER_WEIGHTS="", DATA_ROOT=str(tmp_path / "imagenet"), BATCH_SIZE="4",
                     XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    status, what, folder, _ = done.stdout.splitlines()[0].split("\t")
    assert (status, what) == ("new", "teacher resnet34")
    import train_teacher

    argv = ["--model", "resnet34", "--dataset", "imagenet", "--data_root", str(tmp_path / "imagenet"),
            "--epochs", "100", "--batch_size", "4", "--lr", "0.1", "--lr_decay_epochs", "30,60,90",
            "--lr_decay_rate", "0.1", "--weight_decay", "0.0001", "--trial", "0", "--save_dir", str(tmp_path / "t"),
            "--device", "cpu"]
    folders = {}
    for world in ("1", "2"):
        monkeypatch.setenv("WORLD_SIZE", world)
        folders[world] = train_teacher.parse(argv + ["--plan"])[0].run_dir
    assert folders["2"] != folders["1"]
    assert os.path.abspath(os.path.join(tmp_path, folder)) == os.path.abspath(folders["2"])
