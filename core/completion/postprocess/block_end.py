"""Filter 3 (multi-line only): cut at the end of the block the cursor is in.

First by the language's block style from languages.toml (indentation, braces or begin/end keywords), then
tree-sitter picks, among the line ends left, the longest cut whose file parses with the fewest errors, so
a statement cut off by the token limit is dropped whole.
"""

from __future__ import annotations

import re

from core import languages
from core.completion.postprocess.context import PostprocessContext
from core.completion.should_complete import opens_block
from core.errors import GrammarError

_OPEN_KW = re.compile(r"\b(begin|fork|case[xz]?|module|function|task|class|generate|package|interface)\b")
_CLOSE_KW = re.compile(r"\b(end|join|join_any|join_none|endcase|endmodule|endfunction|endtask|endclass|"
                       r"endgenerate|endpackage|endinterface)\b")
_STRING = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _suffix_closes(suffix: str) -> bool:
    """The suffix already holds the end of the block (its first code line closes it)."""
    for line in suffix.split("\n"):
        s = line.strip()
        if s:
            return s[0] in ")]}" or bool(re.match(r"(end\w*|join\w*)\b", s))
    return False


def _cut_by_indent(lines: list[str], ctx: PostprocessContext) -> list[str]:
    current = ctx.current_line
    base = _indent(current)
    previous = [ln for ln in ctx.prefix.split("\n")[:-1] if ln.strip()]
    if current.strip():
        if opens_block(current, "indent"):
            base = _indent(current) + 1
    elif previous and opens_block(previous[-1], "indent"):
        base = max(base, _indent(previous[-1]) + 1)
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and _indent(line) < base:
            return lines[:i]
    return lines


def _depth_change(line: str, blocks: str) -> list[int]:
    code = _STRING.sub("", line)
    if blocks == "keywords":
        events = [(m.start(), 1) for m in _OPEN_KW.finditer(code)] + [(m.start(), -1) for m in _CLOSE_KW.finditer(code)]
        events += [(i, 1 if c in "({[" else -1) for i, c in enumerate(code) if c in "(){}[]"]
    else:
        events = [(i, 1 if c in "({[" else -1) for i, c in enumerate(code) if c in "(){}[]"]
    return [d for _, d in sorted(events)]


def _cut_by_brackets(lines: list[str], ctx: PostprocessContext, blocks: str) -> list[str]:
    depth = 0
    closes = _suffix_closes(ctx.suffix)
    for i, line in enumerate(lines):
        for d in _depth_change(line, blocks):
            depth += d
            if depth < 0:
                if i == 0:
                    return lines[:1]  # a closer on the cursor's own line: filter 2 handles the overlap
                return lines[:i] if closes else lines[: i + 1]
    return lines


def _error_count(language_id: str, text: str) -> int | None:
    try:
        tree = languages.parse(language_id, text)
    except GrammarError:
        return None
    count = 0
    cursor = tree.walk()
    stack = [tree.root_node]
    del cursor
    while stack:
        node = stack.pop()
        if not node.has_error and not node.is_missing:
            continue
        if node.type == "ERROR" or node.is_missing:
            count += 1
        stack.extend(node.children)
    return count


def _cut_by_parse(lines: list[str], ctx: PostprocessContext) -> list[str]:
    head, tail = ctx.prefix[-3000:], ctx.suffix[:1500]
    best: tuple[int, int] | None = None  # (errors, -length)
    best_n = len(lines)
    for n in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:n])
        if n < len(lines) and not candidate.strip():
            continue
        errors = _error_count(ctx.language_id, head + candidate + tail)
        if errors is None:
            return lines
        key = (errors, -n)
        if best is None or key < best:
            best, best_n = key, n
        if errors == 0:
            break  # the longest cut that parses cleanly
    return lines[:best_n]


def cut_at_block_end(text: str, ctx: PostprocessContext) -> str:
    if not ctx.multiline or "\n" not in text:
        return text
    lang = languages.get(ctx.language_id)
    blocks = lang.blocks if lang else "braces"
    lines = text.split("\n")
    lines = _cut_by_indent(lines, ctx) if blocks == "indent" else _cut_by_brackets(lines, ctx, blocks)
    if lang is not None and len(lines) > 1:
        lines = _cut_by_parse(lines, ctx)
    return "\n".join(lines)
