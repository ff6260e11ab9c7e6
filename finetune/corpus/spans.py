"""Stage 6, parse and select spans: where the cursor is and what the model must write there.

Files are parsed with tree-sitter (`core.languages`). AST kinds (function body, block, statement, expression,
call arguments, condition) pick a random byte and climb to the innermost enclosing node of the kind, so a
node is chosen in proportion to its size, and a node over the token cap is refused. `ast_aligned` snaps a
random character span to whole sibling nodes (AST-FIM, Gong et al. 2024). IDE-shaped spans run from the
cursor to the end of its line or block; `char_random` cuts inside tokens (Bavarian et al. 2022 split at
characters); `empty` teaches the model to insert nothing. Files that do not parse fall back to line and
character spans. Golden cases: tests/finetune/corpus/test_spans.py.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import languages
from core.errors import GrammarError

if TYPE_CHECKING:
    import tree_sitter

AST_KINDS = ("function_body", "block", "statement", "expression", "call_arguments", "condition")
TREE_KINDS = (*AST_KINDS, "ast_aligned")
GENERIC_BLOCKS = frozenset({"block", "statement_block", "compound_statement", "do_group", "seq_block",
                            "class_body", "declaration_list", "constructor_body", "field_declaration_list",
                            "interface_body", "enum_body"})
FUNCTION_PARENT = re.compile(r"function|method|constructor|lambda|func_literal|closure|arrow|procedure|task")
EXPRESSION_TYPES = frozenset({"call", "binary_operator", "boolean_operator", "comparison_operator", "attribute",
                              "subscript", "list", "dictionary", "tuple", "set", "list_comprehension",
                              "dictionary_comprehension", "set_comprehension", "generator_expression",
                              "conditional_expression", "lambda", "await", "not_operator", "unary_operator",
                              "method_invocation", "object_creation_expression", "macro_invocation",
                              "composite_literal", "template_string", "object", "array"})
ATTEMPTS = 12


@dataclass(frozen=True)
class Span:
    """A middle: text[start:end] (character offsets), and the kind of cursor that produced it."""

    start: int
    end: int
    kind: str


class Source:
    """A file's text, its UTF-8 bytes and tree (None when it did not parse), with offset conversion."""

    def __init__(self, text: str, language_id: str, tree=None) -> None:
        self.text = text
        self.language_id = language_id
        self.data = text.encode("utf-8", "surrogatepass")
        self.ascii = len(self.data) == len(text)
        self.tree = tree
        lang = languages.get(language_id)
        self.blocks = GENERIC_BLOCKS | frozenset(lang.block_nodes if lang else ())
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def to_byte(self, c: int) -> int:
        return c if self.ascii else len(self.text[:c].encode("utf-8", "surrogatepass"))

    def to_char(self, b: int) -> int:
        return b if self.ascii else len(self.data[:b].decode("utf-8", "replace"))


def parse_source(text: str, language_id: str, counts: Counter,
                 parse: Callable[[str, str], tree_sitter.Tree | None] = languages.parse) -> Source:
    """Parse `text`; a missing grammar, a parser crash or a tree with errors leaves `tree` None (counted)."""
    try:
        tree = parse(language_id, text)
    except GrammarError:
        counts["grammar_unavailable"] += 1
        return Source(text, language_id)
    except Exception:  # a grammar that crashes on odd input must cost one file's AST spans, not the run
        counts["parser_crash"] += 1
        return Source(text, language_id)
    if tree is None or tree.root_node.has_error:
        counts["parse_errors"] += 1
        return Source(text, language_id)
    counts["parsed"] += 1
    return Source(text, language_id, tree)


def _interior(node) -> tuple[int, int]:
    """Byte range of a node without its delimiters: a block's statements, the inside of ( ) or { }."""
    kids = node.children
    if len(kids) >= 2 and kids[0].type in ("(", "{", "[") and kids[-1].type in (")", "}", "]"):
        return kids[0].end_byte, kids[-1].start_byte
    named = node.named_children
    if named:
        return named[0].start_byte, named[-1].end_byte
    return node.start_byte, node.end_byte


def _is_field(node, name: str) -> bool:
    parent = node.parent
    if parent is None:
        return False
    child = parent.child_by_field_name(name)
    return child is not None and child.start_byte == node.start_byte and child.end_byte == node.end_byte \
        and child.type == node.type


def _matches(node, kind: str, src: Source) -> bool:
    t = node.type
    if kind == "function_body":
        return t in src.blocks and node.parent is not None and bool(FUNCTION_PARENT.search(node.parent.type)) \
            and _is_field(node, "body")
    if kind == "block":
        return t in src.blocks and not (node.parent is not None and FUNCTION_PARENT.search(node.parent.type))
    if kind == "statement":
        return (t.endswith("statement") or t.endswith("declaration") or t == "assignment") and t not in src.blocks
    if kind == "expression":
        return (t.endswith("expression") and t not in ("expression_statement", "parenthesized_expression")) \
            or t in EXPRESSION_TYPES
    if kind == "call_arguments":
        return t in ("argument_list", "arguments") and node.named_child_count > 0
    if kind == "condition":
        return _is_field(node, "condition")
    return False


def _node_range(node, kind: str) -> tuple[int, int]:
    if kind in ("function_body", "block", "call_arguments", "condition"):
        return _interior(node)
    return node.start_byte, node.end_byte


class SpanPicker:
    """Draws spans of the requested kinds from one file; `ok` checks a candidate (token cap, prefix)."""

    def __init__(self, src: Source, rng: random.Random, ok: Callable[[int, int], bool], max_char_span: int,
                 min_prefix_chars: int) -> None:
        self.src, self.rng, self.ok = src, rng, ok
        self.max_char_span = max_char_span
        self.min_prefix = min(min_prefix_chars, max(len(src.text) // 4, 0))
        self.used: set[tuple[int, int]] = set()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _accept(self, start: int, end: int, kind: str, allow_empty: bool = False) -> Span | None:
        text = self.src.text
        if start < self.min_prefix or end > len(text) or start > end or (start, end) in self.used:
            return None
        if not allow_empty and not text[start:end].strip():
            return None
        if not self.ok(start, end):
            return None
        self.used.add((start, end))
        return Span(start, end, kind)

    def _random_line(self) -> tuple[int, int]:
        starts = self.src.line_starts
        i = self.rng.randrange(len(starts))
        end = self.src.text.find("\n", starts[i])
        return starts[i], len(self.src.text) if end == -1 else end

    def _line_range(self, pos: int) -> tuple[int, int]:
        text = self.src.text
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        return start, len(text) if end == -1 else end

    # -- kinds -----------------------------------------------------------------------------------------------
    def ast_node(self, kind: str) -> Span | None:
        src = self.src
        root = src.tree.root_node
        b = self.rng.randrange(max(len(src.data), 1))
        node = root.descendant_for_byte_range(b, b)
        while node is not None and not _matches(node, kind, src):
            node = node.parent
        if node is None:
            return None
        lo, hi = _node_range(node, kind)
        return self._accept(src.to_char(lo), src.to_char(hi), kind)

    def ast_aligned(self) -> Span | None:
        src = self.src
        a = self.rng.randrange(max(len(src.text), 1))
        c = min(len(src.text), a + self.rng.randint(1, self.max_char_span * 2))
        lo, hi = src.to_byte(a), src.to_byte(c)
        node = src.tree.root_node.descendant_for_byte_range(lo, hi)
        if node is None:
            return None
        kids = [k for k in node.children if k.end_byte > lo and k.start_byte < hi]
        if kids:
            lo, hi = kids[0].start_byte, kids[-1].end_byte
        else:
            lo, hi = node.start_byte, node.end_byte
        return self._accept(src.to_char(lo), src.to_char(hi), "ast_aligned")

    def line_end(self) -> Span | None:
        start, end = self._random_line()
        line = self.src.text[start:end]
        first = len(line) - len(line.lstrip())
        if first >= len(line.rstrip()):
            return None
        cursor = start + self.rng.randrange(first, len(line.rstrip()))
        return self._accept(cursor, start + len(line.rstrip()), "line_end")

    def block_end(self) -> Span | None:
        src, text = self.src, self.src.text
        if src.tree is not None:
            node = src.tree.root_node.descendant_for_byte_range(*(2 * [self.rng.randrange(max(len(src.data), 1))]))
            while node is not None and node.type not in src.blocks:
                node = node.parent
            if node is None:
                return None
            kids = node.named_children
            if not kids:
                return None
            # The cursor sits at the start of one statement of the innermost block; the middle finishes the block.
            cursor = src.to_char(self.rng.choice(kids).start_byte)
            return self._accept(cursor, src.to_char(_interior(node)[1]), "block_end")
        # Without a tree: the block is the run of following lines indented deeper than the cursor's line.
        start, end = self._random_line()
        line = text[start:end]
        indent = len(line) - len(line.lstrip())
        if not line.strip():
            return None
        stop = end
        pos = end + 1
        while pos < len(text):
            nxt_end = text.find("\n", pos)
            nxt_end = len(text) if nxt_end == -1 else nxt_end
            nxt = text[pos:nxt_end]
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            stop = nxt_end
            pos = nxt_end + 1
        return self._accept(start + indent, len(text[:stop].rstrip()), "block_end")

    def char_random(self) -> Span | None:
        n = len(self.src.text)
        a = self.rng.randrange(max(n, 1))
        return self._accept(a, min(n, a + self.rng.randint(1, self.max_char_span)), "char_random")

    def empty(self) -> Span | None:
        start, end = self._random_line()
        return self._accept(end, end, "empty", allow_empty=True)

    def line_fallback(self) -> Span | None:
        start, _ = self._random_line()
        end = start
        for _ in range(self.rng.randint(1, 4)):
            nxt = self.src.text.find("\n", end + 1)
            end = len(self.src.text) if nxt == -1 else nxt
        return self._accept(start, end, "line_fallback")

    def draw(self, kind: str) -> Span | None:
        if kind in AST_KINDS:
            return self.ast_node(kind)
        return getattr(self, kind)()


def _fallback_kind(kind: str, parsed: bool) -> str:
    if parsed or kind not in TREE_KINDS:
        return kind
    return "line_fallback"


def select_spans(src: Source, n: int, mix: Mapping[str, float], rng: random.Random,
                 ok: Callable[[int, int], bool], counts: Counter, max_char_span: int = 200,
                 min_prefix_chars: int = 16) -> list[Span]:
    """Up to `n` distinct spans of `src`, kinds drawn from `mix`; AST kinds become line spans without a tree."""
    picker = SpanPicker(src, rng, ok, max_char_span, min_prefix_chars)
    kinds = sorted(k for k, w in mix.items() if w > 0)
    weights = [mix[k] for k in kinds]
    spans: list[Span] = []
    if not kinds or not src.text.strip():
        return spans
    for _ in range(n):
        kind = _fallback_kind(rng.choices(kinds, weights)[0], src.tree is not None)
        span = None
        for _attempt in range(ATTEMPTS):
            span = picker.draw(kind)
            if span is not None:
                break
        if span is None:  # this file has no such node under the cap: a line-shaped cursor instead
            counts[f"no_span:{kind}"] += 1
            span = next((s for s in (picker.line_end() for _ in range(ATTEMPTS)) if s is not None), None)
        if span is not None:
            spans.append(span)
    return spans
