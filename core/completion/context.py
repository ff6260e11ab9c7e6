"""Repository context for a prompt: snippets of other documents similar to the code around the cursor,
and the definitions of names used near the cursor (tree-sitter, see symbols.py).

Called by the prompt builder of the language server and by the exam; returns `core.fim.RepoFile`s that
`FimFormat.render_prompt` lays out in the format's repository-level layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from core import languages
from core.completion.symbols import Definition, SymbolIndex, extract_definitions
from core.fim import RepoFile

_IDENT = re.compile(r"[A-Za-z_]\w*")
WINDOW_LINES = 16
WINDOW_STRIDE = 8
QUERY_PREFIX_LINES = 16
QUERY_SUFFIX_LINES = 4
NEAR_LINES = 8
# A snippet must share at least MIN_SHARED distinctive identifiers (not keywords nor everyday builtins, three
# characters or more) with the code around the cursor, and reach MIN_SIMILARITY (Jaccard); a document in
# another language must clear twice both bars. Below that it is padding, not context: none is better.
MIN_SIMILARITY = 0.15
MIN_SHARED = 2
MAX_OPEN_DOCUMENTS = 10  # other documents offered as context: the most recently edited ones
OPEN_DOCUMENT_CHARS = 30_000  # of each, the start (a huge generated file must not dominate the ranking)
MAX_DEFINITIONS_PER_NAME = 2  # a name defined in many files is ambiguous: the first few (open documents first)
_COMMON = frozenset({
    "if", "else", "for", "while", "return", "def", "class", "int", "void", "char", "const", "let", "var",
    "function", "import", "from", "public", "private", "static", "self", "this", "true", "false", "none",
    "null", "new", "in", "and", "or", "not", "is", "begin", "end", "module", "input", "output", "wire", "reg",
    "logic", "package", "func", "type", "struct", "string", "bool", "float", "double", "long", "unsigned",
    # more keywords of the languages inhouse completes, and builtins every file uses
    "export", "default", "async", "await", "yield", "lambda", "with", "as", "try", "catch", "except", "finally",
    "raise", "throw", "throws", "switch", "case", "break", "continue", "do", "goto", "extends", "implements",
    "interface", "enum", "abstract", "final", "override", "protected", "readonly", "typeof", "instanceof",
    "keyof", "any", "unknown", "never", "undefined", "number", "boolean", "object", "nil", "fn", "impl", "pub",
    "mut", "use", "mod", "match", "where", "trait", "crate", "super", "global", "nonlocal", "pass", "del",
    "assert", "elif", "print", "println", "printf", "console", "log", "len", "range", "str", "list", "dict",
    "tuple", "bytes", "sizeof", "typedef", "extern", "inline", "volatile", "signed", "short", "byte", "defer",
    "chan", "select", "always", "assign", "posedge", "negedge", "initial", "parameter", "localparam",
    "generate", "genvar", "integer", "endmodule", "endcase", "endfunction", "task", "endtask", "bit", "std",
    "include", "define", "ifdef", "endif", "using", "namespace", "template", "typename", "auto", "operator",
    "delete", "virtual", "then", "elsif", "of", "args", "kwargs", "err", "ok", "fmt", "require", "exports",
})
# Language families whose files see each other's definitions (a header and its C++ user, TS and JS...).
_FAMILY = {"typescript": "js", "typescriptreact": "js", "javascript": "js", "javascriptreact": "js",
           "c": "c", "cpp": "c", "verilog": "sv", "systemverilog": "sv"}
# Names the code near the cursor declares itself (a local shadows any definition elsewhere).
_DECLARED = re.compile(r"\b(?:const|let|var|def|function|class|func|type|struct|interface|enum|fn|val|auto)\s+"
                       r"([A-Za-z_]\w*)|^\s*([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?![=>])", re.M)
_RECEIVER = re.compile(r"([A-Za-z_]\w*)?\s*(?:\?\.|\.|->)\s*$")


def family(language_id: str | None) -> str | None:
    """The language family of an id (None for none): definitions and snippets are most useful within one."""
    if not language_id:
        return None
    return _FAMILY.get(language_id, language_id)


def _family_of_path(path: str) -> str | None:
    lang = languages.detect(path)
    return family(lang.id) if lang else None


def _tokens(text: str) -> set[str]:
    """Distinctive identifiers: no keywords, no everyday builtins, no one-letter names."""
    return {t for t in _IDENT.findall(text) if len(t) > 1 and t.lower() not in _COMMON}


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _query(prefix: str, suffix: str) -> str:
    head = "\n".join(prefix.split("\n")[-QUERY_PREFIX_LINES:])
    tail = "\n".join(suffix.split("\n")[:QUERY_SUFFIX_LINES])
    return head + "\n" + tail


def references_near_cursor(prefix: str, suffix: str) -> list[tuple[str, str | None]]:
    """(name, receiver) for the identifiers used near the cursor, nearest first.

    Keywords and names the nearby code declares itself (`const x =`, `def f`, `x = ...`) are left out: they
    refer to nothing elsewhere. `receiver` is the name before a `.`/`->` (`geometry` in `geometry.dot`),
    "" when that is not a plain name (`f().x`), None for a bare name.
    """
    head = prefix.split("\n")[-NEAR_LINES:]
    tail = suffix.split("\n")[:2]
    near = "\n".join(head + tail)
    declared = {a or b for a, b in _DECLARED.findall(near)}
    seen: dict[str, str | None] = {}

    def visit(line: str, reverse: bool) -> None:
        found = []
        for m in _IDENT.finditer(line):
            name = m.group(0)
            if name.lower() in _COMMON or len(name) <= 1 or name in declared:
                continue
            before = line[:m.start()]
            member = _RECEIVER.search(before)
            receiver = (member.group(1) or "") if member else None
            found.append((name, receiver))
        for name, receiver in (reversed(found) if reverse else found):
            if name not in seen or (seen[name] is not None and receiver is None):
                seen[name] = receiver  # a bare use anywhere near makes it a bare reference
    for line in reversed(head):
        visit(line, True)
    for line in tail:
        visit(line, False)
    return list(seen.items())


def names_near_cursor(prefix: str, suffix: str) -> list[str]:
    """Identifiers used near the cursor, nearest first, without keywords nor names declared there."""
    return [name for name, _receiver in references_near_cursor(prefix, suffix)]


def rank_snippets(query: str, documents: Mapping[str, str], exclude: str,
                  language_id: str | None = None) -> list[tuple[float, RepoFile]]:
    """Windows of the other documents, best Jaccard similarity (on distinctive identifiers) to the query first.

    Only windows that share MIN_SHARED identifiers and reach MIN_SIMILARITY count (twice both for a document
    in another language family than `language_id`); a document with none gives nothing.
    """
    q = _tokens(query)
    if not q:
        return []
    mine = family(language_id)
    scored: list[tuple[float, RepoFile]] = []
    for path, content in documents.items():
        if path == exclude or not content:
            continue
        strict = 2 if mine is not None and _family_of_path(path) != mine else 1
        lines = content.split("\n")
        best: tuple[float, int] = (0.0, 0)
        for start in range(0, max(1, len(lines) - WINDOW_LINES + WINDOW_STRIDE), WINDOW_STRIDE):
            window = _tokens("\n".join(lines[start:start + WINDOW_LINES]))
            shared = sum(1 for t in q & window if len(t) >= 3)
            if shared < MIN_SHARED * strict:
                continue
            score = _jaccard(q, window)
            if score > best[0]:
                best = (score, start)
        if best[0] >= MIN_SIMILARITY * strict:
            start = best[1]
            scored.append((best[0], RepoFile(path, "\n".join(lines[start:start + WINDOW_LINES]))))
    scored.sort(key=lambda item: -item[0])
    return scored


def _resolves(d: Definition, receiver: str | None) -> bool:
    """Whether a definition can be what `receiver.name` means: a module or package named like the receiver."""
    if receiver is None:
        return True
    if not receiver:
        return False
    p = PurePosixPath(d.path.replace("\\", "/"))
    return receiver in (p.stem, p.parent.name)


def _definitions(refs: list[tuple[str, str | None]], path: str, documents: Mapping[str, str], language_id: str,
                 index: SymbolIndex | None, window: str) -> list[Definition]:
    """Definitions, in other files of the cursor's language family, of the names the code near it uses."""
    found: list[Definition] = []
    seen: set[tuple[str, str]] = set()
    mine = family(language_id)
    per_doc = {p: extract_definitions(p, c) for p, c in documents.items()
               if p != path and (mine is None or _family_of_path(p) == mine)}
    for name, receiver in refs:
        candidates = [d for defs in per_doc.values() for d in defs if d.name == name]
        if index is not None:
            candidates += index.lookup(name)
        taken = 0
        for d in candidates:
            if taken >= MAX_DEFINITIONS_PER_NAME:
                break
            if d.path == path or (d.path, d.name) in seen or d.text in window:
                continue
            if mine is not None and _family_of_path(d.path) != mine:
                continue  # `value` in a Python file says nothing about `value` in TypeScript
            if not _resolves(d, receiver):
                continue  # `console.log` is not the workspace's `log`
            seen.add((d.path, d.name))
            found.append(d)
            taken += 1
    return found


def open_documents(recent_first: Iterable[tuple[str, str]], current: str) -> dict[str, str]:
    """The other documents an editor session offers as context, the most recent first: at most
    MAX_OPEN_DOCUMENTS, each cut to OPEN_DOCUMENT_CHARS, CRLF as LF. The language server passes its recently
    edited documents; the exam passes the held-out file's neighbours (one rule, so both build the same prompt)."""
    docs: dict[str, str] = {}
    for path, text in recent_first:
        if path == current or path in docs:
            continue
        docs[path] = text[:OPEN_DOCUMENT_CHARS].replace("\r\n", "\n")
        if len(docs) >= MAX_OPEN_DOCUMENTS:
            break
    return docs


def walk_order(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders relative paths as a sorted top-down directory walk lists them (a folder's files,
    then its sub-folders): the order the language server's workspace index reads a repository in."""
    parts = PurePosixPath(path).parts
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def select_context(path: str, prefix: str, suffix: str, documents: Mapping[str, str], language_id: str,
                   budget_chars: int, *, index: SymbolIndex | None = None) -> tuple[RepoFile, ...]:
    """Context files for the prompt, within `budget_chars`: definitions first, then similar snippets.

    `documents` maps path to text (open and recently edited documents); `index` adds workspace definitions.
    """
    if budget_chars <= 0:
        return ()
    window = prefix[-2000:] + suffix[:1000]
    refs = references_near_cursor(prefix, suffix)
    chosen: list[RepoFile] = []
    used = 0
    for d in _definitions(refs, path, documents, language_id, index, window):
        if used + len(d.text) + len(d.path) + 2 > budget_chars:
            continue
        chosen.append(RepoFile(d.path, d.text + "\n"))
        used += len(d.text) + len(d.path) + 2
    for _score, snippet in rank_snippets(_query(prefix, suffix), documents, path, language_id):
        cost = len(snippet.content) + len(snippet.path) + 2
        if used + cost > budget_chars or snippet.content in window:
            continue
        if any(snippet.content in c.content or c.content.strip() in snippet.content for c in chosen):
            continue
        chosen.append(RepoFile(snippet.path, snippet.content + "\n"))
        used += cost
    return tuple(chosen)
