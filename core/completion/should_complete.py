"""Stage 1 of the pipeline: decide whether to ask for a completion at all, and single- or multi-line.

Called by the language server for every request, and by the exam for its `multiline` choice.
Skips: unknown or disabled languages, and a cursor touching a word on its right (mid-word edits).
Multi-line: at the start of an empty block (tree-sitter, with a line-based fallback).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from core import languages
from core.errors import GrammarError

# Text right of the cursor that still allows a completion: closing brackets, quotes and trailing punctuation.
CLOSERS = frozenset(")]}>\"'`;,:")
_WORD = re.compile(r"\w")
_KEYWORD_OPEN = re.compile(r"\b(begin|fork|case[xz]?|module|function|task|class|generate|package|interface)\b[^;]*$")


@dataclass(frozen=True)
class Decision:
    complete: bool
    multiline: bool
    reason: str


def _current_line(prefix: str) -> str:
    return prefix[prefix.rfind("\n") + 1:]


def _rest_of_line(suffix: str) -> str:
    end = suffix.find("\n")
    return (suffix if end == -1 else suffix[:end]).rstrip("\r")


def opens_block(line: str, blocks: str) -> bool:
    """Whether a line of code ends by opening a block (`{`, Python's `:`, a Verilog `begin`...)."""
    code = line.rstrip()
    if not code:
        return False
    if blocks == "indent":
        return code.endswith(":")
    if blocks == "keywords":
        return bool(_KEYWORD_OPEN.search(code)) or code.endswith("{")
    return code.endswith("{")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_is_empty_after(suffix: str, opener_indent: int, blocks: str) -> bool:
    """The suffix starts with no statement of the block just opened (it closes it, dedents or ends)."""
    for line in suffix.split("\n")[1:] if "\n" in suffix else []:
        if not line.strip():
            continue
        stripped = line.strip()
        if blocks == "indent":
            return _indent(line) <= opener_indent
        if blocks == "keywords" and re.match(r"(end\w*|join\w*)\b", stripped):
            return True
        return stripped[0] in ")]}"
    return True


def _empty_block_ts(prefix: str, suffix: str, language_id: str) -> bool | None:
    """Tree-sitter's view: the cursor sits in a block node with no statement. None when it has no opinion."""
    lang = languages.get(language_id)
    if lang is None or not lang.block_nodes:
        return None
    head = prefix[-4000:]
    tail = suffix[:2000]
    try:
        tree = languages.parse(language_id, head + tail)
    except GrammarError:
        return None
    pos = len(head.encode("utf-8"))
    node = tree.root_node.descendant_for_byte_range(pos, pos)
    while node is not None:
        if node.type in lang.block_nodes:
            statements = [c for c in node.named_children if "comment" not in c.type]
            return not statements
        node = node.parent
    return None


def _is_multiline(prefix: str, suffix: str, language_id: str) -> bool:
    lang = languages.get(language_id)
    blocks = lang.blocks if lang else "braces"
    line = _current_line(prefix)
    rest = _rest_of_line(suffix).strip()
    if line.strip():
        # At the end of a line that opens a block (`{|}` or `def f():|`): the body comes next.
        return opens_block(line, blocks) and all(c in CLOSERS for c in rest)
    if rest:
        return False
    previous = [ln for ln in prefix.split("\n")[:-1] if ln.strip()]
    if not previous:
        return True  # an empty file, or only blank lines before the cursor: write the first block
    opener = previous[-1]
    if opens_block(opener, blocks):
        if _block_is_empty_after(suffix, _indent(opener), blocks):
            return True
        return bool(_empty_block_ts(prefix, suffix, language_id))
    return bool(_empty_block_ts(prefix, suffix, language_id))


def decide(prefix: str, suffix: str, language_id: str, enabled_languages: Collection[str] | None = None) -> Decision:
    """Whether to complete at the cursor between `prefix` and `suffix`, and in multi-line mode or not."""
    lang = languages.get(language_id)
    if lang is None:
        return Decision(False, False, f"unsupported language {language_id!r}")
    if enabled_languages is not None and "*" not in enabled_languages:
        enabled = {known.id if (known := languages.get(x)) is not None else x for x in enabled_languages}
        if lang.id not in enabled:
            return Decision(False, False, f"disabled for {lang.id}")
    rest = _rest_of_line(suffix)
    if rest[:1] and _WORD.match(rest[0]):
        return Decision(False, False, "cursor inside a word")
    if rest.strip() and not all(c in CLOSERS or c.isspace() for c in rest):
        # Text to the right that is not just closers: only complete right after an opening or separating mark,
        # where the middle of a call or expression is missing (`f(|, b)`).
        before = prefix[-1:] if prefix else ""
        if before and _WORD.match(before):
            return Decision(False, False, "text right of cursor")
    multiline = _is_multiline(prefix, suffix, lang.id)
    return Decision(True, multiline, "block start" if multiline else "single line")
