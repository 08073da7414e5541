"""Every script a user types by path (`python tools/collect_results.py ...`, `python benchmarks/...`) or as a module
(`python -m tools.plan`) starts from any working folder with nothing on PYTHONPATH. The project is installed into
its environment (`scripts/setup_env.sh`: `pip install -e .` from pyproject.toml), so no file edits ``sys.path``.
(`tools/collect_results.py` once imported ``distiller`` before its own ``sys.path`` line and failed with
``ModuleNotFoundError`` everywhere but under pytest.)"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(  # the files with a ``__main__`` block; a library module such as tools/paired.py is not typed
    str(p.relative_to(ROOT)) for p in [*ROOT.glob("*.py"), *(ROOT / "tools").glob("*.py"),
                                       *(ROOT / "benchmarks").glob("*.py")]
    if p.name != "setup.py" and '__name__ == "__main__"' in p.read_text())


def project_files():
    """The Python files of the project outside tests/ (the environment and caches left out)."""
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] not in ("tests", "build") and not any(p.startswith(".") for p in parts):
            yield path


def path_edits(path: Path):
    """Lines of ``path`` that touch ``sys.path`` or add a site folder."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                and node.value.id == "sys") or (isinstance(node, ast.Attribute) and node.attr == "addsitedir"):
            yield node.lineno


def test_no_file_outside_tests_edits_sys_path():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in project_files() for line in path_edits(path)]
    assert len(list(project_files())) > 50
    assert found == [], f"edits of sys.path outside tests/ (the editable install makes them unnecessary): {found}"


def test_pyproject_names_every_package_and_stage_module():
    """The install maps exactly the names pyproject.toml declares: a new top-level package or stage script must be
    declared there, or it imports only from the repository's root."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {pattern.rstrip("*") for pattern in tool["packages"]["find"]["include"]} == packages
    assert set(tool["py-modules"]) == {p.stem for p in ROOT.glob("*.py") if p.name != "setup.py"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The interpreter imports this checkout from a foreign folder: the project's own .venv must (the setup script
    installs it); another environment (a shared one, a checkout without the install) is skipped, saying why."""
    where = subprocess.run([sys.executable, "-c", "import train_student, tools.plan; print(train_student.__file__)"],
                           cwd=tmp_path_factory.mktemp("foreign"), capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if where.returncode == 0 and Path(where.stdout.strip()).resolve() == ROOT / "train_student.py":
        return
    reason = (f"this checkout is not installed in {sys.prefix} (bash scripts/setup_env.sh installs it): "
              f"{(where.stdout + where.stderr).strip()[-300:]}")
    if Path(sys.prefix).resolve() == (ROOT / ".venv").resolve():
        pytest.fail(reason)
    pytest.skip(reason)


def test_the_list_is_not_empty():
    assert "tools/collect_results.py" in SCRIPTS and "train_student.py" in SCRIPTS and len(SCRIPTS) >= 10


@pytest.mark.parametrize("command", [[str(ROOT / script)] for script in SCRIPTS] + [["-m", "tools.plan"]],
                         ids=SCRIPTS + ["-m tools.plan"])
def test_script_starts_from_a_foreign_folder(command, installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, *command, "--help"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    assert "usage:" in done.stdout, done.stdout[-500:]
    assert list(tmp_path.iterdir()) == [], f"{command} --help wrote {list(tmp_path.iterdir())}"


def test_setup_reinstalls_when_requirements_or_pyproject_change(tmp_path):
    """scripts/setup_env.sh installs again (the requirements, then the project) only when requirements.txt or
    pyproject.toml changed since its last install: a new package declared in pyproject.toml reaches the venv."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup_env.sh").write_bytes((ROOT / "scripts" / "setup_env.sh").read_bytes())
    for name in ("requirements.txt", "pyproject.toml"):
        (tmp_path / name).write_text(f"{name} 1\n")
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f"#!/bin/bash\necho \"$*\" >> {log}\n")  # records what pip would do
    (venv / "bin" / "python").chmod(0o755)

    def setup():
        log.write_text("")
        done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup_env.sh")], env=dict(os.environ, TOPKD_VENV=str(venv)),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line for line in log.read_text().splitlines() if "pip install" in line]

    first = setup()
    assert len(first) == 2 and "-r" in first[0] and "-e" in first[1] and "--no-build-isolation" in first[1]
    assert setup() == []
    (tmp_path / "pyproject.toml").write_text("pyproject.toml 2\n")
    assert len(setup()) == 2
    assert setup() == []
    (tmp_path / "requirements.txt").write_text("requirements.txt 2\n")
    assert len(setup()) == 2
