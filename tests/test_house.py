"""The house stays small where a newcomer reads: train_student.py's import closure (every project module it
imports, directly or through others, function-local imports included) holds at most 60 modules besides the
method files of `distiller/zoo/` (one per baseline method: each is ML core a reader opens only for that method)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULES = 60


def project_module(name: str):
    """The file of a project module or package named ``name`` (dotted), None for a library."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path):
    """Dotted names ``path`` imports anywhere in its body (relative imports resolved)."""
    package = path.parent.relative_to(ROOT).parts
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            yield from (f"{module}.{a.name}" if module else a.name for a in node.names)


def closure(entry: Path):
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            parts = name.split(".")
            todo += [f for f in (project_module(".".join(parts[:i])) for i in range(1, len(parts) + 1)) if f]
    return seen


def test_train_student_imports_at_most_60_project_modules():
    modules = {m for m in closure(ROOT / "train_student.py")
               if not (m.parent == ROOT / "distiller" / "zoo" and m.name != "__init__.py")}
    assert ROOT / "engine" / "trainer.py" in modules and ROOT / "distiller" / "topkd.py" in modules  # it walks
    assert len(modules) <= MAX_MODULES, sorted(str(m.relative_to(ROOT)) for m in modules)
