"""RTL mutants for the ladder's L5: simple operator, constant and condition changes in the top module's logic.

`mutants(path, top, n, params)` reads the top file with tree-sitter-systemverilog and picks, deterministically,
up to n mutations inside `always` blocks and continuous assignments (never in declarations, ranges, event
controls or the design's own assertions). With the elaborated parameter values, code the parameters switch
off (`if (FRAME_FIFO)`, `MODE ? a : b`, `x && ENABLE`, generate `if`) is left alone: a mutant there is
equivalent, and no test can kill it. `apply(text, mutant)` returns the mutated source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core import languages
from verifenv.constexpr import evaluate
from verifenv.syntax import walk

_SWAP = {"+": "-", "-": "+", "&": "|", "|": "&", "&&": "||", "||": "&&", "==": "!=", "!=": "==", "<": ">=",
         ">=": "<", ">": "<=", "<=": ">", "^": "|", "<<": ">>", ">>": "<<"}
_ASSIGNMENTS = ("nonblocking_assignment", "blocking_assignment", "operator_assignment")
_NEVER = ("event_control", "packed_dimension", "unpacked_dimension", "constant_range", "immediate_assertion_statement",
          "deferred_immediate_assertion_statement", "concurrent_assertion_item", "assertion_item",
          "system_tf_call", "multiple_concatenation", "data_declaration", "net_declaration", "parameter_declaration",
          "local_parameter_declaration", "constant_bit_select", "bit_select", "select", "constant_select",
          "part_select_range", "constant_part_select_range", "indexed_range")
_BASED = re.compile(r"^(\d*)\s*'([sS]?)([bBoOdDhH])\s*([0-9a-fA-F_]+)$")


@dataclass(frozen=True)
class Mutant:
    id: str
    kind: str  # operator | constant | condition
    line: int
    start: int  # byte offsets in the file
    end: int
    original: str
    replacement: str

    @property
    def description(self) -> str:
        return f"line {self.line}: {self.kind} `{self.original}` -> `{self.replacement}`"


def _eligible(node) -> bool:
    inside = False
    cur = node.parent
    while cur is not None:
        if cur.type in _NEVER or "select" in cur.type or "assert" in cur.type:
            return False
        if cur.type == "continuous_assign":
            inside = True
        if cur.type == "always_construct":  # an always block with no assignment only checks (assertions)
            inside = any(n.type in _ASSIGNMENTS for n in walk(cur))
        if cur.type == "module_declaration":
            break
        cur = cur.parent
    return inside


def _flip_literal(text: str) -> str | None:
    compact = text.replace(" ", "")
    based = _BASED.match(compact)
    if based:
        size, signed, base, digits = based.groups()
        radix = {"b": 2, "o": 8, "d": 10, "h": 16}[base.lower()]
        value = int(digits.replace("_", ""), radix) ^ 1
        body = {2: format(value, "b"), 8: format(value, "o"), 10: str(value), 16: format(value, "x")}[radix]
        return f"{size}'{signed}{base}{body}"
    if compact.isdigit():
        value = int(compact)
        return "0" if value == 1 else str(value + 1)
    return None


_BRANCHING = ("conditional_statement", "if_generate_construct", "conditional_expression")


def _split_top(text: str, op: str) -> list[tuple[int, str]]:
    """(offset, part) of `text` split on `op` at parenthesis depth 0."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and text.startswith(op, i):
            parts.append((start, text[start:i]))
            start = i + len(op)
            i += len(op)
            continue
        i += 1
    parts.append((start, text[start:]))
    return parts


def _param_only(text: str, params: Mapping[str, int | None]) -> int | None:
    names = set(re.findall(r"(?<!')\b[A-Za-z_]\w*\b", re.sub(r"\d*'[sS]?[bBoOdDhH][0-9a-fA-F_]+", " ", text)))
    if not names <= set(params):
        return None
    return evaluate(text.strip(), params)


def _condition(text: str, params: Mapping[str, int | None]) -> tuple[bool | None, list[tuple[int, int]]]:
    """A branch condition's value when the parameters decide it, and the spans of the parts that cannot change
    that (the other conjuncts beside a false parameter conjunct)."""
    whole = _param_only(text, params)
    if whole is not None:
        return bool(whole), []
    for op, decides in (("&&", False), ("||", True)):
        parts = _split_top(text, op)
        if len(parts) < 2:
            continue
        values = [_param_only(part, params) for _off, part in parts]
        if any(v is not None and bool(v) == decides for v in values):
            return decides, [(off, off + len(part)) for (off, part), v in zip(parts, values, strict=True)
                             if v is None]
    return None, []


def _dead(node, src: bytes, params: Mapping[str, int | None]) -> bool:
    """Whether the elaborated parameters make this node's code unreachable or its change invisible."""
    child, cur = node, node.parent
    while cur is not None and cur.type != "module_declaration":
        if cur.type in _BRANCHING:
            named = [c for c in cur.children if c.is_named]
            if len(named) >= 2:
                cond = named[0]
                value, inert = _condition(src[cond.start_byte:cond.end_byte].decode("utf-8", "replace"), params)
                if value is not None:
                    if child.id == named[1].id and value is False:
                        return True
                    if len(named) > 2 and child.id == named[2].id and value is True:
                        return True
                    if child.id == cond.id and any(cond.start_byte + a <= node.start_byte and
                                                   node.end_byte <= cond.start_byte + b for a, b in inert):
                        return True
        elif cur.type == "expression" and len(cur.children) == 3 and cur.children[1].type in ("&&", "||"):
            op = cur.children[1].type
            other = cur.children[2] if child.id == cur.children[0].id else cur.children[0]
            known = _param_only(src[other.start_byte:other.end_byte].decode("utf-8", "replace"), params)
            if child.id != cur.children[1].id and known is not None and bool(known) == (op == "||"):
                return True  # `x && 0`, `x || 1`: x is never looked at
        child, cur = cur, cur.parent
    return False


def _same_constant(node, item: tuple[str, int, int, str, str, int], src: bytes,
                   params: Mapping[str, int | None]) -> bool:
    """A change inside a parameter-only expression that leaves its value as it was (`(A && B)` -> `(A || B)`
    with A = B = 0) is an equivalent mutant."""
    outer = None
    cur = node.parent
    while cur is not None and cur.type not in ("module_declaration", "continuous_assign", "always_construct"):
        if cur.type in ("expression", "constant_expression", "cond_predicate") and \
                _param_only(src[cur.start_byte:cur.end_byte].decode("utf-8", "replace"), params) is not None:
            outer = cur
        cur = cur.parent
    if outer is None:
        return False
    _kind, start, end, _orig, replacement, _line = item
    before = src[outer.start_byte:outer.end_byte].decode("utf-8", "replace")
    after = (src[outer.start_byte:start] + replacement.encode() + src[end:outer.end_byte]).decode("utf-8", "replace")
    value = _param_only(after, params)
    return value is not None and value == _param_only(before, params)


def candidates(src: bytes, top: str, params: Mapping[str, int | None] | None = None) -> list[Mutant]:
    """Every mutation this module offers, in source order (none in code the parameters switch off)."""
    tree = languages.parse("systemverilog", src)
    module = None
    for node in walk(tree.root_node):
        if node.type == "module_declaration":
            name_node = next((n for n in walk(node) if n.type == "module_keyword"), None)
            sib = name_node.next_named_sibling if name_node is not None else None
            if sib is not None and src[sib.start_byte:sib.end_byte].decode() == top:
                module = node
                break
    if module is None:
        return []
    found: list[tuple[str, int, int, str, str, int]] = []

    def add(node, item: tuple[str, int, int, str, str, int]) -> None:
        if not (params and (_dead(node, src, params) or _same_constant(node, item, src, params))):
            found.append(item)

    for node in walk(module):
        text = src[node.start_byte:node.end_byte].decode("utf-8", "replace")
        parent = node.parent
        if parent is not None and parent.type == "expression" and not node.is_named and text in _SWAP \
                and _field(parent, node) == "operator" and _eligible(node):
            add(node, ("operator", node.start_byte, node.end_byte, text, _SWAP[text], node.start_point[0] + 1))
        elif node.type == "unary_operator" and text in ("!", "~") and _eligible(node):
            add(node, ("condition", node.start_byte, node.end_byte, text, "", node.start_point[0] + 1))
        elif node.type == "cond_predicate" and _eligible(node):
            add(node, ("condition", node.start_byte, node.end_byte, text, f"!({text})", node.start_point[0] + 1))
        elif node.type == "primary_literal" and _eligible(node):
            flipped = _flip_literal(text)
            if flipped is not None and flipped != text:
                add(node, ("constant", node.start_byte, node.end_byte, text, flipped, node.start_point[0] + 1))
    found.sort(key=lambda f: (f[1], f[0]))
    return [Mutant(f"m{i:03d}", kind, line, start, end, orig, repl)
            for i, (kind, start, end, orig, repl, line) in enumerate(found)]


def _field(parent, child) -> str | None:
    for i, c in enumerate(parent.children):
        if c.id == child.id:
            return parent.field_name_for_child(i)
    return None


def mutants(path: str | Path, top: str, n: int, params: Mapping[str, int | None] | None = None) -> list[Mutant]:
    """Up to n mutants spread evenly over the module's candidates (deterministic)."""
    pool = candidates(Path(path).read_bytes(), top, params)
    if n <= 0 or not pool:
        return []
    if n >= len(pool):
        return pool
    picks = sorted({int(i * len(pool) / n) for i in range(n)})
    return [pool[i] for i in picks]


def apply(src: bytes, mutant: Mutant) -> bytes:
    return src[:mutant.start] + mutant.replacement.encode("utf-8") + src[mutant.end:]
