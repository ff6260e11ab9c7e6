"""RTL mutants for the ladder's L5: simple operator, constant and condition changes in the top module's logic.

`mutants(path, top, n)` reads the top file with tree-sitter-systemverilog and picks, deterministically, up to n
mutations inside `always` blocks and continuous assignments (never in declarations, ranges, event controls
or the design's own assertions). `apply(text, mutant)` returns the mutated source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core import languages
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


def candidates(src: bytes, top: str) -> list[Mutant]:
    """Every mutation this module offers, in source order."""
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
    for node in walk(module):
        text = src[node.start_byte:node.end_byte].decode("utf-8", "replace")
        parent = node.parent
        if parent is not None and parent.type == "expression" and not node.is_named and text in _SWAP \
                and _field(parent, node) == "operator" and _eligible(node):
            found.append(("operator", node.start_byte, node.end_byte, text, _SWAP[text], node.start_point[0] + 1))
        elif node.type == "unary_operator" and text in ("!", "~") and _eligible(node):
            found.append(("condition", node.start_byte, node.end_byte, text, "", node.start_point[0] + 1))
        elif node.type == "cond_predicate" and _eligible(node):
            found.append(("condition", node.start_byte, node.end_byte, text, f"!({text})", node.start_point[0] + 1))
        elif node.type == "primary_literal" and _eligible(node):
            flipped = _flip_literal(text)
            if flipped is not None and flipped != text:
                found.append(("constant", node.start_byte, node.end_byte, text, flipped, node.start_point[0] + 1))
    found.sort(key=lambda f: (f[1], f[0]))
    return [Mutant(f"m{i:03d}", kind, line, start, end, orig, repl)
            for i, (kind, start, end, orig, repl, line) in enumerate(found)]


def _field(parent, child) -> str | None:
    for i, c in enumerate(parent.children):
        if c.id == child.id:
            return parent.field_name_for_child(i)
    return None


def mutants(path: str | Path, top: str, n: int) -> list[Mutant]:
    """Up to n mutants spread evenly over the module's candidates (deterministic)."""
    pool = candidates(Path(path).read_bytes(), top)
    if n <= 0 or not pool:
        return []
    if n >= len(pool):
        return pool
    picks = sorted({int(i * len(pool) / n) for i in range(n)})
    return [pool[i] for i in picks]


def apply(src: bytes, mutant: Mutant) -> bytes:
    return src[:mutant.start] + mutant.replacement.encode("utf-8") + src[mutant.end:]
