"""Resets inferred from use: an input that forces registers to constants in `always` blocks is a reset.

`infer(text, inputs, params)` reads a module's text (macro-expanded by pyslang where it could, so `FFARN`-style
register macros count) and returns, per candidate input, the evidence: which registers it forces, in which
block, with which polarity, and whether it is in the sensitivity list (asynchronous). Names only break ties
(`interface._clocks_resets`). Called by `interface.extract`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_ALWAYS = re.compile(r"\balways(?:_ff|_latch)?\s*@\s*(\((?:[^()]|\([^()]*\))*\)|\*|[A-Za-z_]\w*)")
_IF = re.compile(r"\bif\s*\(\s*(?P<neg>[!~]?)\s*\(?\s*(?P<sig>[A-Za-z_]\w*)\s*\)?\s*"
                 r"(?:(?P<op>==|===|!=|!==)\s*(?:1'[bB]|'|1'[hH]|'[bB])?(?P<val>[01])\s*)?\)")
_ASSIGN = re.compile(r"([A-Za-z_][\w.\[\]:+\-\s]*?)\s*<?=\s*([^;]*);")
_LITERAL = re.compile(r"^(?:\d*'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ_?]+|'[01xXzZ]|\d+|'\{.*\}|\{.*\})$")
_CAST = re.compile(r"\b[A-Za-z_]\w*\s*'\s*\(")
_KEYWORDS = frozenset({"default", "begin", "end", "if", "else"})


@dataclass
class ResetEvidence:
    name: str
    active_low: bool
    asynchronous: bool
    registers: list[str] = field(default_factory=list)  # registers this input forces to a constant
    blocks: int = 0  # always blocks it does so in

    def to_json(self) -> dict:
        return {"forces": sorted(set(self.registers))[:12], "forced_count": len(set(self.registers)),
                "blocks": self.blocks, "asynchronous": self.asynchronous, "active_low": self.active_low}


def _blocks(text: str) -> list[tuple[str, str]]:
    """(sensitivity, body) for every always block; the body ends at the next always/assign/endmodule."""
    out = []
    matches = list(_ALWAYS.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end():end]
        stop = re.search(r"\b(endmodule|assign|initial|endgenerate)\b", body)
        out.append((match.group(1), body[:stop.start()] if stop else body))
    return out


def _branch(body: str, start: int) -> str:
    """The statement (or begin..end block) that starts at `start`."""
    rest = body[start:]
    head = re.match(r"\s*begin\b(\s*:\s*\w+)?", rest)
    if not head:
        semi = rest.find(";")
        return rest[:semi + 1] if semi >= 0 else rest
    depth = 0
    for tok in re.finditer(r"\b(begin|end)\b", rest):
        depth += 1 if tok.group(1) == "begin" else -1
        if depth == 0:
            return rest[:tok.end()]
    return rest


def _priority_position(body: str, start: int, end: int) -> bool:
    """A reset branch comes first in its block (or in an else chain), or last (it overrides all before it)."""
    before = body[:start]
    if re.fullmatch(r"\s*(begin(\s*:\s*\w+)?\s*)?", before) or re.search(r"\belse\s*(begin\s*)?$", before):
        return True
    depth = len(re.findall(r"\bbegin\b", before)) - len(re.findall(r"\bend\b", before))
    if depth > (1 if re.match(r"\s*begin\b", body) else 0):
        return False  # nested inside other logic
    after = re.sub(r"\belse\b.*", "", body[end:], flags=re.DOTALL) if re.match(r"\s*else\b", body[end:]) else body[end:]
    return re.fullmatch(r"\s*(end\b\s*)*", after) is not None


def _is_constant(expr: str, params: set[str]) -> bool:
    expr = _CAST.sub("(", expr.strip())
    expr = expr.strip("() ")
    if not expr:
        return False
    if _LITERAL.match(expr.replace(" ", "")):
        return True
    names = set(re.findall(r"(?<!')\b[A-Za-z_]\w*\b", re.sub(r"\d*'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ_]+", " ", expr)))
    return bool(names) and all(n in params or n.isupper() for n in names - _KEYWORDS)


def infer(text: str, inputs: Iterable[str], params: Iterable[str] = ()) -> dict[str, ResetEvidence]:
    """Inputs that force registers to constants in an `always` block, with the evidence."""
    candidates = set(inputs)
    consts = set(params)
    found: dict[str, ResetEvidence] = {}
    for sensitivity, body in _blocks(text):
        edges = {name: edge for edge, name in re.findall(r"\b(posedge|negedge)\s*\(?\s*([A-Za-z_]\w*)",
                                                          sensitivity)}
        if not edges:
            continue  # combinational: a forced value there is a mux, not a reset
        seen_here: set[str] = set()
        for match in _IF.finditer(body):
            sig = match.group("sig")
            if sig not in candidates or sig in seen_here:
                continue
            branch = _branch(body, match.end())
            if sig not in edges and not _priority_position(body, match.start(), match.end() + len(branch)):
                continue  # `if (start) busy <= 1` deep inside the logic is a set, not a reset
            assigns = _ASSIGN.findall(branch)
            if not assigns or re.search(r"\b(if|case|for)\b", branch):
                continue
            if not all(_is_constant(rhs, consts) for _lhs, rhs in assigns):
                continue
            negated = bool(match.group("neg"))
            if match.group("op"):
                negated ^= match.group("val") == "0"
                negated ^= match.group("op") in ("!=", "!==")
            active_low = negated
            if sig in edges:
                active_low = edges[sig] == "negedge"
            ev = found.setdefault(sig, ResetEvidence(sig, active_low, sig in edges))
            ev.asynchronous = ev.asynchronous or sig in edges
            ev.registers.extend(re.sub(r"^(?:\s*\b(?:begin|end|else)\b)+|\s+", "", lhs).split("[")[0]
                                for lhs, _rhs in assigns)
            ev.blocks += 1
            seen_here.add(sig)
    return found
