"""Every script a user types by path (`python tools/collect_results.py ...`, `python benchmarks/...`) starts from
any working folder with nothing on PYTHONPATH: the script puts the repository on ``sys.path`` itself before it
imports one of our packages. (`tools/collect_results.py` once imported ``distiller`` first and failed with
``ModuleNotFoundError`` everywhere but under pytest.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    [p.name for p in ROOT.glob("*.py") if p.name != "setup.py"]
    + [f"tools/{p.name}" for p in (ROOT / "tools").glob("*.py") if p.name != "__init__.py"]
    + [f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py")])


def test_the_list_is_not_empty():
    assert "tools/collect_results.py" in SCRIPTS and "train_student.py" in SCRIPTS and len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts_from_a_foreign_folder(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script}: {done.stderr[-2000:]}"
    assert "usage:" in done.stdout, done.stdout[-500:]
    assert list(tmp_path.iterdir()) == [], f"{script} --help wrote {list(tmp_path.iterdir())}"
