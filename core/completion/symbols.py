"""A tree-sitter symbol index: the definitions (functions, classes, types, modules) of workspace files.

The language server fills one `SymbolIndex` in the background; `context.select_context` looks up the
names used near the cursor in it. Extraction is cached per (path, content hash).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from core import languages
from core.errors import GrammarError

log = logging.getLogger(__name__)

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
MAX_DEFINITION_LINES = 12


@dataclass(frozen=True)
class Definition:
    name: str
    path: str
    text: str  # the definition's source, cut to its first MAX_DEFINITION_LINES lines
    line: int


def _name_of(node) -> str | None:
    named = node.child_by_field_name("name")
    if named is not None and named.text:
        return named.text.decode("utf-8", "replace")
    declarator = node.child_by_field_name("declarator")  # C and C++: int *f(...) { }
    while declarator is not None:
        if declarator.type in _NAME_TYPES:
            return declarator.text.decode("utf-8", "replace")
        declarator = declarator.child_by_field_name("declarator")
    for child in node.children:  # Verilog: module_declaration > module_header > simple_identifier
        if child.type in _NAME_TYPES:
            return child.text.decode("utf-8", "replace")
        for grandchild in child.children:
            if grandchild.type in _NAME_TYPES:
                return grandchild.text.decode("utf-8", "replace")
    return None


def _walk_definitions(root) -> Iterable:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in DEFINITION_TYPES:
            yield node
        stack.extend(reversed(node.children))


@functools.lru_cache(maxsize=512)
def _extract(path: str, language_id: str, digest: str, content: str) -> tuple[Definition, ...]:
    del digest  # part of the cache key only
    try:
        tree = languages.parse(language_id, content)
    except GrammarError as exc:
        log.debug("no symbols for %s: %s", path, exc)
        return ()
    data = content.encode("utf-8")
    out = []
    for node in _walk_definitions(tree.root_node):
        if (node.type in ("struct_specifier", "enum_specifier", "union_specifier")
                and node.child_by_field_name("body") is None):
            continue  # a use (`struct P p;`), not a definition
        name = _name_of(node)
        if not name:
            continue
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
