"""The run record (engine/record.py) read where it is used: the stages call training in their `main`, options
declare once whether they change the result and whether a resumed run may change them, and the engine keeps
no hidden state (it writes nothing into the configuration; rank and world size are read in one place)."""
import argparse
import ast
from pathlib import Path

import pytest

from distiller.options import Option
from engine.record import identity_of, option, resume_changes

ROOT = Path(__file__).resolve().parents[1]


def _function(path: Path, name: str) -> ast.FunctionDef:
    tree = ast.parse(path.read_text(), str(path))
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _called(node: ast.AST) -> list:
    return [n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]


@pytest.mark.parametrize("script", ["train_student.py", "train_teacher.py"])
def test_main_calls_fit_inside_the_folder_claim(script):
    """`main` read top to bottom: parse, plan the run folder, build, and `fit` called in an ordinary `with`
    (the training step was a lambda handed to the folder-claim context manager)."""
    main = ast.Module(body=_function(ROOT / script, "main").body, type_ignores=[])
    withs = [n for n in ast.walk(main) if isinstance(n, ast.With)]
    assert any("fit" in _called(w) for w in withs), f"{script}: no fit(...) call inside a `with` in main"
    assert not any(isinstance(n, ast.Lambda) for n in ast.walk(main)), f"{script}: a lambda in main"
    assert not any(isinstance(n, ast.Subscript) for n in ast.walk(main)), f"{script}: a positional tuple in main"
    calls = _called(main)
    assert calls.index("parse") < calls.index("build") < calls.index("fit"), calls


def test_options_declare_whether_they_change_the_result_and_on_resume():
    """The identity is built from the declarations where the options are declared (it was a hand-kept list of
    names beside them, which a new option of the topology term had to be added to)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)  # undeclared: changes the result, fixed on resume
    option(parser, "--num_workers", type=int, default=0, result=False)
    option(parser, "--trial", type=int, default=0, resume="free")
    option(parser, "--epochs", type=int, default=2, resume="continue")
    Option("toy_path", None, "an input file", free=True).add_to(parser, "None")
    Option("toy_power", 2.0, "a method's weight").add_to(parser, "2.0")
    Option("toy_probe", 1, "what a measurement looks at", result=False).add_to(parser, "1")
    values = vars(parser.parse_args(["--toy_power", "2"]))
    identity = identity_of(parser, values, {"data_root": "ab" * 32}, world_size=2)
    assert set(identity.options) == {"lr", "trial", "epochs", "toy_power", "world_size"}
    other = dict(values, num_workers=8, toy_path="elsewhere", toy_probe=5)
    assert identity_of(parser, other, identity.inputs, world_size=2).hash == identity.hash
    # a run trained further keeps its folder; another trial or weight does not
    assert identity_of(parser, dict(values, epochs=9), identity.inputs, world_size=2).hash == identity.hash
    for change in ({"trial": 1}, {"toy_power": 3.0}, {"lr": 0.2}):
        assert identity_of(parser, dict(values, **change), identity.inputs, world_size=2).hash != identity.hash
    # on resume: trial and epochs may change, the weight and the learning rate may not
    stored = {"identity": identity.to_dict()}
    resumed = identity_of(parser, dict(values, trial=3, epochs=9, lr=0.5, toy_power=3.0), identity.inputs,
                          world_size=2)
    assert resume_changes(stored, resumed) == [("lr", 0.1, 0.5), ("toy_power", 2.0, 3.0)]


def _engine_trees():
    for path in sorted((ROOT / "engine").glob("*.py")):
        yield path.name, ast.parse(path.read_text(), str(path))


def test_the_engine_writes_no_configuration_and_reads_the_rank_in_one_place():
    """`cfg` was written from nine modules (the trainer turned amp and compile off in it, the run folder set
    resume and identity), and $RANK was read in three."""
    for name, tree in _engine_trees():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                owner = target.value if isinstance(target, ast.Attribute) else None
                written = ast.unparse(owner) if owner is not None else ""
                assert written not in ("cfg", "self.cfg", "args"), f"engine/{name}:{node.lineno} writes {written}"
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "setattr":
                assert ast.unparse(node.args[0]) not in ("cfg", "self.cfg"), f"engine/{name}:{node.lineno}"
    readers = {name for name, tree in _engine_trees() for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and node.value in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    for path in ROOT.glob("*.py"):
        if any(v in path.read_text() for v in ('"RANK"', '"WORLD_SIZE"')):
            readers.add(path.name)
    assert readers == {"distributed.py"}, readers


STAGES = ("train_student.py", "train_teacher.py", "generate_PCD_PI.py", "train_ripsnet.py", "generate_image_PI.py",
          "evaluate.py")


def test_the_engine_and_the_stages_refuse_users_with_our_error_class():
    """A user error raised as a plain ValueError (or FloatingPointError for a diverged loss) reads as a bug once
    `run_cli` keeps tracebacks for everything but `TopKDError` and OSErrors: none is raised here."""
    plain = []
    for path in [*sorted((ROOT / "engine").glob("*.py")), *(ROOT / name for name in STAGES)]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) \
                    and node.exc.func.id in ("ValueError", "FloatingPointError", "RuntimeError"):
                plain.append(f"{path.name}:{node.lineno} {node.exc.func.id}")
    assert not plain, plain
