"""The floors of the house, read from the imports with ``ast`` (no module is imported): `topkd_io` at the
bottom; `topology`, `models` and `datasets` import nothing from `engine`; `engine` imports no data-set
module; no package but `tools` imports a stage script, and stage scripts import no other stage script;
no import cycle among the packages. Every import counts, those inside functions too."""
import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
STAGES = sorted(p.stem for p in ROOT.glob("*.py"))  # the stage scripts at the top level


def _module_name(path: Path) -> Tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imports_of(path: Path) -> List[Tuple[int, str]]:
    """``(line, absolute module name)`` of every import in a file (relative imports resolved)."""
    module, is_package = _module_name(path)
    base = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{anchor}.{node.module}" if node.module else anchor
                # "from . import x" names modules x of the anchor package
                names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            else:
                names = [node.module]
            out += [(node.lineno, n) for n in names]
    return out


def package_files(package: str) -> List[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.fixture(scope="module")
def edges() -> Dict[str, Set[Tuple[str, str]]]:
    """package -> {(importing file:line, imported module)} for imports of our other packages and scripts."""
    ours = set(PACKAGES) | set(STAGES)
    out: Dict[str, Set[Tuple[str, str]]] = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in package_files(package):
            for line, name in imports_of(path):
                top = name.split(".")[0]
                if top in ours and top != package:
                    out[package].add((f"{path.relative_to(ROOT)}:{line}", name))
    return out


def _imported(edges, package: str, *targets: str) -> List[str]:
    return [f"{where} imports {name}" for where, name in sorted(edges[package])
            if name.split(".")[0] in targets]


@pytest.mark.parametrize("package", ["topology", "models", "datasets"])
def test_lower_floors_import_nothing_from_engine(edges, package):
    assert not _imported(edges, package, "engine")


def test_topkd_io_imports_none_of_ours(edges):
    assert not _imported(edges, "topkd_io", *PACKAGES)


def test_design_floors(edges):
    """DESIGN.md: datasets never import models; topology imports neither models nor datasets."""
    assert not _imported(edges, "datasets", "models", "distiller", "pcd")
    assert not _imported(edges, "topology", "models", "datasets", "distiller", "pcd")


def test_engine_imports_no_data_set_module(edges):
    """A data-set module is one that registers a builder (``@register(...)`` in datasets/); the engine reads
    data sets through the registry and the bundle only."""
    data_set_modules = set()
    for path in package_files("datasets"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", "") == "register" for d in node.decorator_list):
                data_set_modules.add(_module_name(path)[0])
    assert {"datasets.cifar", "datasets.digits"} <= data_set_modules  # the rule finds them
    bad = [f"{where} imports {name}" for where, name in sorted(edges["engine"])
           if any(name == m or name.startswith(m + ".") for m in data_set_modules)]
    assert not bad


def test_only_tools_import_stage_scripts(edges):
    bad = [msg for package in PACKAGES if package != "tools" for msg in _imported(edges, package, *STAGES)]
    assert not bad
    for stage in STAGES:  # stage scripts import packages, not each other
        others = [n for _, n in imports_of(ROOT / f"{stage}.py") if n.split(".")[0] in set(STAGES) - {stage}]
        assert not others, f"{stage}.py imports {others}"


def test_no_import_cycles_among_packages(edges):
    graph = {p: {n.split(".")[0] for _, n in edges[p] if n.split(".")[0] in PACKAGES} for p in PACKAGES}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,))) for n in graph[start])

    cycles = [(a, b) for a in PACKAGES for b in PACKAGES if a < b and reaches(a, b) and reaches(b, a)]
    assert not cycles, f"packages importing each other (directly or through others): {cycles}"
