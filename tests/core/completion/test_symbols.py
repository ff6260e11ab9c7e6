"""The symbol index reads definitions from each grammar's tags query: the same definitions as the node-type walk
it replaced (kept for grammars without a query), but for the differences listed here, each on purpose."""

from __future__ import annotations

import importlib
import logging

import pytest

from core import languages
from core.completion import symbols
from core.completion.symbols import extract_definitions
from core.errors import GrammarError

PYTHON = (
    "import math\r\n"
    "LIMIT = 3  # a module constant: the grammar's @definition.constant, left out\r\n"
    "\r\n"
    "class Vector:\r\n"
    "    \"\"\"ä, a\u0308, 錯誤, 😋\"\"\"\r\n"
    "    def __init__(self, x):\r\n"
    "        self.x = x\r\n"
    "\r\n"
    "    @property\r\n"
    "    def größe(self):\r\n"
    "        return 1\r\n"
    "\r\n"
    "@decorator\r\n"
    "def 錯誤(a, b):\r\n"
    "    def inner():\r\n"
    "        pass\r\n"
    "    return lambda: a\r\n"
)

JAVASCRIPT = """// ä, a\u0308, 錯誤, 😋
class Cart {
  constructor(a) { this.a = a; }
  add(id) { return id; }
  get size() { return 1; }
}
function 錯誤(r) { return r * r; }
function* gen() { yield 1; }
const square = (x) => x * x;
var old = function named() {};
const Klass = class Inner {};
module.exports.helper = function () {};
const o = { key: () => 1, other: 2 };
export default function main() {}
"""

TYPESCRIPT = """// ä, a\u0308, 錯誤, 😋
export function area(r: number): number {
  return r * r;
}
interface Shape { n: number; perimeter(): number }
type Id = string | number;
enum Color { Red, Green }
abstract class Base { abstract run(): void; constructor() {} }
class Impl extends Base { run(): void {} }
declare function ext(a: number): void;
const arrow = (a: number): number => a;
"""

GO = (
    "package m\r\n"
    "\r\n"
    "import \"fmt\"\r\n"
    "\r\n"
    "var Global = \"ä, a\u0308, 錯誤, 😋\"\r\n"
    "const Pi = 3.14\r\n"
    "\r\n"
    "type Point struct{ X int }\r\n"
    "type Shape interface{ Area() float64 }\r\n"
    "\r\n"
    "func Größe(a, b int) int {\r\n"
    "\treturn a + b\r\n"
    "}\r\n"
    "\r\n"
    "func (p Point) Norm() int { return p.X }\r\n"
)

RUST = """// ä, a\u0308, 錯誤, 😋
mod geo {
    pub fn inner() {}
}
struct Point { x: i32 }
enum Color { Red }
union U { a: u32 }
type Alias = u32;
trait Shape { fn area(&self) -> f64; }
impl Point {
    fn new() -> Self { Point { x: 0 } }
}
fn größe(a: i32) -> i32 { a }
macro_rules! sq { ($x:expr) => { $x * $x }; }
const MAX: u32 = 3;
"""

JAVA = """package p;
// ä, a\u0308, 錯誤, 😋
class Acc {
  Acc() {}
  int größe(int a) { return a; }
  interface Inner { void f(); }
  enum Kind { A, B }
  record Pair(int a, int b) {}
}
"""

C = """#include <stdio.h>
/* ä, a\u0308, 錯誤, 😋 */
struct P { int x; };
struct P p;
union U { int a; float b; };
union U u;
enum Color { RED, GREEN };
enum Color c;
typedef struct { int y; } Anon;
typedef int myint;
int add(int a, int b);
static int *ptr(void) { return 0; }
int add(int a, int b) {
  return a + b;
}
"""

CPP = """// ä, a\u0308, 錯誤, 😋
namespace geo {
class Shape {
 public:
  virtual double area() const;
  int n;
};
struct Pt { int x; };
}
template <typename T>
T add(T a, T b) { return a + b; }
int& ref(int& a) { return a; }
union U { int a; };
"""

# language id: (fixture, (name, line) only the tags query finds, (name, line) only the walk found)
CASES = {
    "python": (PYTHON, set(), set()),
    "javascript": (JAVASCRIPT, {
        ("gen", 7),  # generator functions, `const f = () => ...`, named function and class expressions,
        ("square", 8), ("old", 9), ("named", 9), ("Inner", 10),  # `exports.f = function`, `{key: () => ...}`:
        ("helper", 11), ("key", 12),  # the walk knew only declarations
    }, {("constructor", 2)}),  # the grammar's query leaves `constructor` out: the class is what a name finds
    "typescript": (TYPESCRIPT, {
        ("perimeter", 4),  # method signatures of interfaces and abstract classes
        ("run", 7),
        ("arrow", 10),
    }, {("constructor", 7)}),
    "go": (GO, set(), set()),
    "rust": (RUST, {
        ("geo", 1), ("U", 6), ("Alias", 7), ("sq", 13),  # modules, unions, type aliases, macros
    }, set()),
    "java": (JAVA, set(), {
        ("p", 0),  # `package_declaration` was in the walk for SystemVerilog, not for Java's package clause
        ("Acc", 3),  # a constructor has its class's name, and the class comes first
    }),
    "c": (C, set(), set()),
    "cpp": (CPP, {
        ("Shape", 2),  # classes (`class_specifier`): the walk had only C's structs
        ("ref", 11),  # `int& f()`: the walk did not follow a reference declarator to the name
    }, set()),
}
CASES["typescriptreact"] = CASES["typescript"]


def _ships_tags(lang: languages.Language) -> bool:
    return isinstance(getattr(importlib.import_module(lang.module), "TAGS_QUERY", None), str)


def _by_key(found, source: str) -> dict[tuple[str, int], str]:
    data = source.encode("utf-8")
    return {(name, node.start_point[0]): data[node.start_byte:node.end_byte].decode("utf-8")
            for name, node in found}


def test_every_grammar_that_ships_a_tags_query_uses_it():
    shipping = {lang.id for lang in languages.all_languages() if _ships_tags(lang)}
    assert shipping == set(CASES)  # a grammar upgrade that adds one needs a case here
    for lang in languages.all_languages():
        assert (languages.tags_query(lang.id) is not None) == (lang.id in shipping), lang.id
        if lang.id in shipping:
            assert lang.module in lang.tags


@pytest.mark.parametrize("lang_id", sorted(CASES))
def test_tags_find_what_the_walk_found_but_the_listed_differences(lang_id):
    source, added, dropped = CASES[lang_id]
    root = languages.parse(lang_id, source).root_node
    assert not root.has_error
    query = languages.tags_query(lang_id)
    assert query is not None
    tags_list = symbols._tag_definitions(query, root)
    walk_list = list(symbols._walk_definitions(root))
    tags, walk = _by_key(tags_list, source), _by_key(walk_list, source)
    assert added <= tags.keys() and not added & walk.keys()
    assert dropped <= walk.keys() and not dropped & tags.keys()
    assert tags.keys() - added == walk.keys() - dropped
    for key in tags.keys() & walk.keys():
        assert tags[key] == walk[key], key  # the same node: the definition's text in the prompt is unchanged
    # in the same order (the first of a name in a file is the one the context takes)
    common = tags.keys() & walk.keys()
    assert [k for k in _by_key(tags_list, source) if k in common] == [k for k in walk if k in common]
    # and the index itself reads the query
    assert {(d.name, d.line) for d in extract_definitions(f"x.{lang_id}", source, lang_id)} == tags.keys()


def test_unicode_and_crlf_definitions():
    defs = {d.name: d for d in extract_definitions("geo.py", PYTHON)}
    assert set(defs) == {"Vector", "__init__", "größe", "錯誤", "inner"}
    assert defs["größe"].line == 9 and defs["größe"].text.startswith("def größe(self):\r\n")
    assert "ä, a\u0308, 錯誤, 😋" in defs["Vector"].text
    assert [d.line for d in extract_definitions("m.go", GO)] == [7, 8, 10, 14]


@pytest.mark.parametrize("lang_id", ["verilog", "systemverilog", "vhdl", "csharp", "shellscript"])
def test_grammars_without_a_tags_query_walk_node_types(lang_id):
    assert languages.tags_query(lang_id) is None


def test_a_tags_query_that_fails_to_load_falls_back_to_the_walk(monkeypatch, caplog):
    def broken(language_id):
        raise GrammarError(f"tags query for {language_id} failed to load: test")

    monkeypatch.setattr(languages, "tags_query", broken)
    symbols._tags_query.cache_clear()
    symbols._extract.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="core.completion.symbols"):
            names = [d.name for d in extract_definitions("A.java", JAVA)]
        assert names == ["p", "Acc", "Acc", "größe", "Inner", "f", "Kind", "Pair"]  # the walk's, `package` and all
        assert "walking node types instead" in caplog.text
    finally:
        symbols._tags_query.cache_clear()
        symbols._extract.cache_clear()
