"""The import graph of the product packages, read from the source (ast), lazy imports included.

`core` imports no component, by any means (a lazy import, `importlib.import_module("...")`, a "module:attr"
string); components import `core` and themselves, never each other; only `app` (the composition root) may import
every component; and no module reaches itself again through its imports (no cycles, lazy imports included).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "finetune", "server", "lsp", "verifenv", "gateway", "flywheel", "app")
COMPONENTS = ("finetune", "server", "lsp", "verifenv", "gateway", "flywheel")
# A string that is exactly a module path, optionally with ":attribute" (the form a component table uses).
_MODULE_STRING = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*)(?::\w+)?$")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its __init__)."""
    out: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in (`a.b.func` -> `a.b`)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int, str]]:
    """(imported module, line, how) for every import anywhere in the file: top level, in functions, in
    `if TYPE_CHECKING:`, by `importlib.import_module`/`__import__` with a literal name, or named by a string."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    # `[python, "-m", "app.cli", ...]` starts the console script as a process: that names it, it imports nothing
    launched = {id(seq.elts[i + 1]) for seq in ast.walk(tree) if isinstance(seq, (ast.List, ast.Tuple))
                for i, elt in enumerate(seq.elts[:-1]) if isinstance(elt, ast.Constant) and elt.value == "-m"}
    for node in ast.walk(tree):
        names: list[str] = []
        how = "import"
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b` imports the module a.b when there is one, else the name b of module a
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names, how = [node.args[0].value], f"{called}()"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in launched:
            match = _MODULE_STRING.match(node.value)
            if match and "." in match.group(1) and match.group(1) in modules:
                names, how = [match.group(1)], "string"
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                yield target, getattr(node, "lineno", 0), how


def import_graph(root: Path, packages: tuple[str, ...]) -> tuple[dict[str, Path], dict[str, dict[str, str]]]:
    """(modules, edges): edges[a][b] says where and how module a imports module b."""
    modules = module_files(root, packages)
    edges: dict[str, dict[str, str]] = {m: {} for m in modules}
    for module, path in modules.items():
        for target, line, how in imports_of(module, path, modules):
            edges[module].setdefault(target, f"{path.relative_to(root)}:{line} ({how})")
    return modules, edges


def layer_violations(edges: dict[str, dict[str, str]]) -> list[str]:
    out = []
    for module, targets in edges.items():
        top = module.split(".")[0]
        for target, where in targets.items():
            other = target.split(".")[0]
            if other == top or top == "app":
                continue
            if top == "core" or other == "app" or other in COMPONENTS:
                out.append(f"{module} imports {target}: {where}")
    return sorted(out)


def cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, str]]:
    return import_graph(REPO, PACKAGES)[1]


def test_every_package_is_read(graph):
    for package in PACKAGES:
        assert package in graph, f"{package}/__init__.py not found"
    assert "app.cli" in graph and "core.config" in graph


def test_core_imports_no_component_and_components_import_no_other_component(graph):
    assert layer_violations(graph) == []


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import cycles (lazy imports included):\n" + "\n".join(
        " <-> ".join(c) + "\n  " + "\n  ".join(f"{a} -> {b}: {graph[a][b]}" for a in c for b in c if b in graph[a])
        for c in found)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def test_the_checks_see_lazy_imports_strings_and_cycles(tmp_path):
    """The checks on a small tree that breaks every rule once, in each way an import can hide."""
    _write(tmp_path, {
        "core/__init__.py": "",
        "core/a.py": "def f():\n    from core import b\n",
        "core/b.py": "from . import a\n",                                  # relative: a cycle with core.a
        "core/c.py": "import importlib\nimportlib.import_module('server.x')\n",
        "core/d.py": "TABLE = ('lsp.y:handler',)\nCMD = ['python', '-m', 'app.main']  # a process, not an import\n",
        "core/e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.main import X\n",
        "server/__init__.py": "", "server/x.py": "from lsp.y import handler\n",
        "lsp/__init__.py": "", "lsp/y.py": "from core.a import f\nhandler = f\n",
        "app/__init__.py": "", "app/main.py": "import server.x\nimport lsp.y\nX = 1\n",
    })
    _modules, edges = import_graph(tmp_path, ("core", "server", "lsp", "app"))
    assert layer_violations(edges) == [
        "core.c imports server.x: core/c.py:2 (import_module())",
        "core.d imports lsp.y: core/d.py:1 (string)",
        "core.e imports app.main: core/e.py:3 (import)",
        "server.x imports lsp.y: server/x.py:1 (import)",
    ]
    assert cycles(edges) == [["core.a", "core.b"]]
