"""select_context and the symbol index with real tree-sitter grammars."""

from __future__ import annotations

from core.completion.context import names_near_cursor, select_context
from core.completion.symbols import SymbolIndex, extract_definitions

GEOMETRY = """import math


class Vector:
    def __init__(self, x, y):
        self.x = x
        self.y = y


def dot_product(a, b):
    return a.x * b.x + a.y * b.y


def unrelated_logging_setup(level):
    handler = make_handler(level)
    return handler
"""

NOISE = "\n".join(f"CONSTANT_{i} = {i}" for i in range(60))


def test_definitions_of_names_near_the_cursor_come_first():
    prefix = "from geometry import Vector, dot_product\n\n\ndef angle(u, v):\n    d = dot_product(u, v)\n    n = "
    docs = {"geometry.py": GEOMETRY, "constants.py": NOISE, "main.py": prefix}
    files = select_context("main.py", prefix, "\n", docs, "python", 2000)
    assert files, "expected context"
    assert files[0].path == "geometry.py"
    assert "def dot_product(a, b)" in "".join(f.content for f in files)
    assert all(f.path != "main.py" for f in files)
    assert sum(len(f.content) + len(f.path) + 2 for f in files) <= 2000


def test_budget_is_respected_and_zero_budget_gives_nothing():
    prefix = "v = dot_product(a, b)\n"
    docs = {"geometry.py": GEOMETRY}
    assert select_context("m.py", prefix, "", docs, "python", 0) == ()
    small = select_context("m.py", prefix, "", docs, "python", 80)
    assert sum(len(f.content) + len(f.path) + 2 for f in small) <= 80


def test_similar_snippets_ranked():
    query_prefix = "def handler_for(level):\n    handler = make_handler(level)\n    "
    docs = {"log.py": GEOMETRY, "noise.py": NOISE}
    files = select_context("x.py", query_prefix, "", docs, "python", 3000)
    assert any("make_handler" in f.content for f in files)
    assert not any(f.path == "noise.py" for f in files)


def test_symbol_index_languages():
    index = SymbolIndex()
    assert index.update("geometry.py", GEOMETRY) == 4  # class, __init__, 2 functions
    index.update("adder.v", "module adder(input a, input b, output y);\n  assign y = a ^ b;\nendmodule\n")
    index.update("m.go", "package m\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n\ntype Point struct{ X int }\n")
    index.update("m.c", "struct P { int x; };\nint add(int a, int b) {\n  return a + b;\n}\n")
    index.update("A.java", "class Acc {\n  int total(int a) { return a; }\n}\n")
    index.update("m.ts", "export function area(r: number): number {\n  return r * r;\n}\ninterface Shape { n: number }\n")
    for name in ("Vector", "dot_product", "adder", "Add", "Point", "P", "add", "Acc", "total", "area", "Shape"):
        assert index.lookup(name), name
    assert index.files == 6
    index.remove("m.go")
    assert not index.lookup("Add")
    # Workspace definitions reach the prompt through the index even when the file is not open.
    files = select_context("main.v", "module top;\n  adder u0(", "", {}, "verilog", 500, index=index)
    assert files and files[0].path == "adder.v"


def test_names_near_cursor_skip_keywords():
    names = names_near_cursor("for item in items:\n    total = compute(item)", "")
    assert names[:2] == ["item", "compute"]
    assert "for" not in names and "in" not in names


def test_unknown_language_has_no_definitions():
    assert extract_definitions("notes.txt", "def f(): pass") == ()
