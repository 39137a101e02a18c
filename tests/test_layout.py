"""The layout holds: no import circle in ``stream/`` or ``models/``, ``models/`` never imports
``stream/``, and no module grows past ~500 lines without saying in its first docstring line why it
must be one file.

Every import counts, wherever it stands: at the top, inside a function, under ``TYPE_CHECKING``
(an import moved into a function still ties the two modules together).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stream", "models")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # import a.b.c of a module a.b
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_stream_or_models() -> None:
    graph = _graph()
    assert len(graph) > 40  # the walk found the packages
    circles = _circles(graph)
    assert not circles, "import circles (each line: modules that import each other in a loop): " + "; ".join(
        " <-> ".join(c) for c in circles
    )


def test_the_model_side_never_imports_the_stream_side() -> None:
    graph = _graph()
    bad = {m: sorted(t for t in deps if t.startswith("stream")) for m, deps in graph.items() if m.startswith("models")}
    assert not {m: t for m, t in bad.items() if t}


def test_a_long_module_says_why_it_must_be_one_file() -> None:
    long = {}
    for name, path in _modules().items():
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            if "one file" not in doc.splitlines()[0] if doc else True:
                long[name] = n
    assert not long, f"modules over {MAX_LINES} lines whose first docstring line does not say why: {long}"


def test_every_package_is_declared_for_the_wheel() -> None:
    """The image installs the wheel (``pip install .``): a package missing from pyproject's list would be
    left out of it, and the worker would fail to import in the container only."""
    import tomllib

    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")}
    assert found <= declared, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - declared)}"
