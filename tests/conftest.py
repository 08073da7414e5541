"""Shared test fixtures.

`reference_dir` points at the facts from the official TopKD release (``../shared/reference`` beside the
checkout, or ``$TOPKD_REFERENCE``). A user's clone has no such folder: tests that need it are skipped
with a message saying where it was looked for.
"""
import os
import sys
from pathlib import Path

import pytest
import torch

# The suite runs on small CPU machines: one intra-op thread keeps tiny forward passes fast and
# avoids oversubscription when pytest shares the cores with anything else.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _reference_path() -> Path:
    env = os.environ.get("TOPKD_REFERENCE")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session", autouse=True)
def stage_logging():
    """Log messages reach stdout as a stage's setup makes them (`engine.stage.setup_logging`), also for
    tests that drive the library without a stage script."""
    from engine.stage import setup_logging

    setup_logging(0)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The data fingerprints' cache (`datasets.registry.image_tree`, under $XDG_CACHE_HOME) in a temporary
    folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
        yield


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = _reference_path()
    if not (path / "official_state_dicts.json").is_file():
        pytest.skip(f"official reference data not found at {path} (set TOPKD_REFERENCE to its folder)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture()
def run_stage(capsys):
    """``run_stage(main, argv)`` runs a stage's ``main`` as its script would (through ``run_cli``) ->
    ``(exit code, stdout, stderr)``."""
    from topkd_io import run_cli

    def call(main, argv):
        try:
            code = run_cli(main, argv)
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run first: spread over the xdist workers from the start instead of forming a
    tail at the end of the run (the order inside each group is kept)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
