"""A tree-sitter symbol index: the definitions (functions, classes, types, modules) of workspace files.

The language server fills one `SymbolIndex` in the background; `context.select_context` looks up the
names used near the cursor in it. Extraction is cached per (path, content hash). What a definition is comes
from the grammar's own tags query (`@definition.*` with its `@name`, see `tags` in core/languages.toml);
for grammars without one (Verilog, SystemVerilog, VHDL, C#, Bash) from a walk over DEFINITION_TYPES.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import languages
from core.errors import GrammarError

if TYPE_CHECKING:
    from tree_sitter import Node, Query

log = logging.getLogger(__name__)

# The walk for grammars without a tags query: node types that are definitions, named by `_name_of`.
DEFINITION_TYPES = frozenset({
    "function_definition", "class_definition", "function_declaration", "method_declaration",
    "method_definition", "class_declaration", "interface_declaration", "enum_declaration",
    "constructor_declaration", "record_declaration", "type_spec", "type_alias_declaration",
    "struct_specifier", "enum_specifier", "union_specifier", "type_definition", "module_declaration",
    "function_item", "struct_item", "enum_item", "trait_item", "task_declaration", "package_declaration",
    "abstract_class_declaration", "function_signature",
})
_NAME_TYPES = ("identifier", "simple_identifier", "type_identifier", "field_identifier", "property_identifier",
               "name")
# Tags kinds left out: `@definition.constant` is any module-level assignment (Python's `log = getLogger(...)`
# in every file), which would put other files' one-liners in the prompt for everyday names.
SKIPPED_KINDS = frozenset({"constant"})
MAX_DEFINITION_LINES = 12
@dataclass(frozen=True)
class Definition:
    name: str
    path: str
    text: str  # the definition's source, cut to its first MAX_DEFINITION_LINES lines
    line: int


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _name_of(node: Node) -> str | None:
    named = node.child_by_field_name("name")
    if named is not None and named.text:
        return _text(named)
    declarator = node.child_by_field_name("declarator")  # C and C++: int *f(...) { }
    while declarator is not None:
        if declarator.type in _NAME_TYPES:
            return _text(declarator)
        declarator = declarator.child_by_field_name("declarator")
    for child in node.children:  # Verilog: module_declaration > module_header > simple_identifier
        if child.type in _NAME_TYPES:
            return _text(child)
        for grandchild in child.children:
            if grandchild.type in _NAME_TYPES:
                return _text(grandchild)
    return None


def _walk_definitions(root: Node) -> Iterable[tuple[str, Node]]:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in DEFINITION_TYPES and not _is_use(node):
            name = _name_of(node)
            if name:
                yield name, node
        stack.extend(reversed(node.children))


def _is_use(node: Node) -> bool:
    """A C specifier without a body is a use (`struct P p;`), not a definition."""
    return node.type in ("struct_specifier", "enum_specifier", "union_specifier") and \
        node.child_by_field_name("body") is None


def _definition_node(captured: Node) -> Node | None:
    """The node whose text is the definition a tags match captured, or None when it is not one to index."""
    node = captured
    if node.type == "function_declarator":
        # C and C++ capture a function's declarator, prototypes and in-class declarations included. Only a
        # definition with a body is indexed, as the walk did: a forward declaration would stand in for the body.
        while node.parent is not None and node.type.endswith("_declarator"):  # `int *f()`, `int &f()`
            node = node.parent
        return node if node.type == "function_definition" else None
    if node.type == "declaration":  # C's union pattern captures `union U {...} u;`: the specifier is the definition
        node = node.child_by_field_name("type") or node
    return None if _is_use(node) else node


def _tag_definitions(query: Query, root: Node) -> list[tuple[str, Node]]:
    import tree_sitter

    found: dict[tuple[int, int, str], Node] = {}
    for _pattern, captures in tree_sitter.QueryCursor(query).matches(root):
        kind = next((c for c in captures if c.startswith("definition.")), None)
        if kind is None or kind.removeprefix("definition.") in SKIPPED_KINDS or not captures.get("name"):
            continue  # a reference, a doc comment or an import
        node = _definition_node(captures[kind][0])
        name = _text(captures["name"][0])
        if node is not None and name:
            found.setdefault((node.start_byte, node.end_byte, name), node)  # Rust: a method is a function too
    # Document order, an enclosing definition before the ones inside it (the walk's pre-order).
    return [(key[2], node) for key, node in sorted(found.items(), key=lambda kv: (kv[0][0], -kv[0][1]))]


@functools.cache
def _tags_query(language_id: str) -> Query | None:
    try:
        return languages.tags_query(language_id)
    except GrammarError as exc:
        log.warning("%s; walking node types instead", exc)
        return None


@functools.lru_cache(maxsize=512)
def _extract(path: str, language_id: str, digest: str, content: str) -> tuple[Definition, ...]:
    del digest  # part of the cache key only
    try:
        tree = languages.parse(language_id, content)
    except GrammarError as exc:
        log.debug("no symbols for %s: %s", path, exc)
        return ()
    query = _tags_query(language_id)
    found = _tag_definitions(query, tree.root_node) if query is not None else _walk_definitions(tree.root_node)
    data = content.encode("utf-8")
    out = []
    for name, node in found:
        text = data[node.start_byte:node.end_byte].decode("utf-8", "replace")
        lines = text.split("\n")
        if len(lines) > MAX_DEFINITION_LINES:
            text = "\n".join(lines[:MAX_DEFINITION_LINES])
        out.append(Definition(name=name, path=path, text=text, line=node.start_point[0]))
    return tuple(out)


def extract_definitions(path: str, content: str, language_id: str | None = None) -> tuple[Definition, ...]:
    """Every definition in one file (empty for unknown languages or unparsable grammars)."""
    lang = languages.get(language_id) if language_id else languages.detect(path)
    if lang is None:
        return ()
    digest = hashlib.blake2b(content.encode("utf-8", "replace"), digest_size=12).hexdigest()
    return _extract(path, lang.id, digest, content)


class SymbolIndex:
    """Definitions by name across files; thread-safe (the language server fills it from a worker thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, tuple[Definition, ...]] = {}
        self._by_name: dict[str, list[Definition]] = {}

    def update(self, path: str, content: str, language_id: str | None = None) -> int:
        """(Re)index one file; returns how many definitions it has."""
        defs = extract_definitions(path, content, language_id)
        with self._lock:
            self._by_path[path] = defs
            self._rebuild()
        return len(defs)

    def remove(self, path: str) -> None:
        with self._lock:
            if self._by_path.pop(path, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        by_name: dict[str, list[Definition]] = {}
        for defs in self._by_path.values():
            for d in defs:
                by_name.setdefault(d.name, []).append(d)
        self._by_name = by_name

    def lookup(self, name: str) -> list[Definition]:
        with self._lock:
            return list(self._by_name.get(name, ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(d) for d in self._by_path.values())

    @property
    def files(self) -> int:
        with self._lock:
            return len(self._by_path)
