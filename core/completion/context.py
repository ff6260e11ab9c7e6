"""Repository context for a prompt: snippets of other documents similar to the code around the cursor,
and the definitions of names used near the cursor (tree-sitter, see symbols.py).

Called by the prompt builder of the language server and by the exam; returns `core.fim.RepoFile`s that
`FimFormat.render_prompt` lays out in the format's repository-level layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.completion.symbols import Definition, SymbolIndex, extract_definitions
from core.fim import RepoFile

_IDENT = re.compile(r"[A-Za-z_]\w*")
WINDOW_LINES = 16
WINDOW_STRIDE = 8
QUERY_PREFIX_LINES = 16
QUERY_SUFFIX_LINES = 4
NEAR_LINES = 8
MIN_SIMILARITY = 0.1
_COMMON = frozenset({
    "if", "else", "for", "while", "return", "def", "class", "int", "void", "char", "const", "let", "var",
    "function", "import", "from", "public", "private", "static", "self", "this", "true", "false", "none",
    "null", "new", "in", "and", "or", "not", "is", "begin", "end", "module", "input", "output", "wire", "reg",
    "logic", "package", "func", "type", "struct", "string", "bool", "float", "double", "long", "unsigned",
})


def _tokens(text: str) -> set[str]:
    return set(_IDENT.findall(text))


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _query(prefix: str, suffix: str) -> str:
    head = "\n".join(prefix.split("\n")[-QUERY_PREFIX_LINES:])
    tail = "\n".join(suffix.split("\n")[:QUERY_SUFFIX_LINES])
    return head + "\n" + tail


def names_near_cursor(prefix: str, suffix: str) -> list[str]:
    """Identifiers used near the cursor, nearest first, without keywords."""
    head = prefix.split("\n")[-NEAR_LINES:]
    tail = suffix.split("\n")[:2]
    seen: dict[str, None] = {}
    for line in reversed(head):
        for name in reversed(_IDENT.findall(line)):
            if name.lower() not in _COMMON and len(name) > 1:
                seen.setdefault(name)
    for line in tail:
        for name in _IDENT.findall(line):
            if name.lower() not in _COMMON and len(name) > 1:
                seen.setdefault(name)
    return list(seen)


def rank_snippets(query: str, documents: Mapping[str, str], exclude: str) -> list[tuple[float, RepoFile]]:
    """Windows of the other documents, best Jaccard similarity (on identifiers) to the query first."""
    q = _tokens(query)
    scored: list[tuple[float, RepoFile]] = []
    for path, content in documents.items():
        if path == exclude or not content:
            continue
        lines = content.split("\n")
        best: tuple[float, int] = (0.0, 0)
        for start in range(0, max(1, len(lines) - WINDOW_LINES + WINDOW_STRIDE), WINDOW_STRIDE):
            score = _jaccard(q, _tokens("\n".join(lines[start:start + WINDOW_LINES])))
            if score > best[0]:
                best = (score, start)
        if best[0] >= MIN_SIMILARITY:
            start = best[1]
            scored.append((best[0], RepoFile(path, "\n".join(lines[start:start + WINDOW_LINES]))))
    scored.sort(key=lambda item: -item[0])
    return scored


def _definitions(names: list[str], path: str, documents: Mapping[str, str], language_id: str,
                 index: SymbolIndex | None, window: str) -> list[Definition]:
    found: list[Definition] = []
    seen: set[tuple[str, str]] = set()
    per_doc = {p: extract_definitions(p, c) for p, c in documents.items() if p != path}
    for name in names:
        candidates = [d for defs in per_doc.values() for d in defs if d.name == name]
        if index is not None:
            candidates += index.lookup(name)
        for d in candidates:
            if d.path == path or (d.path, d.name) in seen or d.text in window:
                continue
            seen.add((d.path, d.name))
            found.append(d)
    del language_id
    return found


def select_context(path: str, prefix: str, suffix: str, documents: Mapping[str, str], language_id: str,
                   budget_chars: int, *, index: SymbolIndex | None = None) -> tuple[RepoFile, ...]:
    """Context files for the prompt, within `budget_chars`: definitions first, then similar snippets.

    `documents` maps path to text (open and recently edited documents); `index` adds workspace definitions.
    """
    if budget_chars <= 0:
        return ()
    window = prefix[-2000:] + suffix[:1000]
    names = names_near_cursor(prefix, suffix)
    chosen: list[RepoFile] = []
    used = 0
    for d in _definitions(names, path, documents, language_id, index, window):
        if used + len(d.text) + len(d.path) + 2 > budget_chars:
            continue
        chosen.append(RepoFile(d.path, d.text + "\n"))
        used += len(d.text) + len(d.path) + 2
    for _score, snippet in rank_snippets(_query(prefix, suffix), documents, path):
        cost = len(snippet.content) + len(snippet.path) + 2
        if used + cost > budget_chars or snippet.content in window:
            continue
        if any(snippet.content in c.content or c.content.strip() in snippet.content for c in chosen):
            continue
        chosen.append(RepoFile(snippet.path, snippet.content + "\n"))
        used += cost
    return tuple(chosen)
