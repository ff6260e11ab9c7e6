"""The design's own assertions, in statement and macro form, and the stimulus constraints they imply.

`find(raw, expanded)` lists `assert`/`assume` statements (from the macro-expanded text where pyslang gave one)
and `` `ASSERT(...) ``/`` `ASSUME(...) ``/`` `ASSERT_NEVER(...) `` macro calls (lowRISC and PULP style) as
one-line texts. `constraints(texts, inputs, outputs)` turns those that forbid an input while an output holds
(`!(in && out)`, `out |-> !in`, `out |-> ~in`, `in |-> !out`) into lines of `constraints.constrain`.
Called by `interface.extract` and `generate.owned_files`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_STATEMENT = re.compile(r"\b(assert|assume)\b\s*(property\b)?\s*\(")
_MACRO = re.compile(r"`(ASSERT|ASSUME|ASSERT_NEVER|ASSERT_I|ASSUME_I|ASSERT_IF)\s*\(")
_NOT = r"(?:!|~)"


def _call_args(text: str, start: int) -> tuple[list[str], int] | None:
    """The comma-separated arguments of a call whose `(` is at start - 1 (nesting respected)."""
    depth = 1
    args: list[str] = []
    current: list[str] = []
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
            i += 1
            continue
        elif ch == '"':
            end = text.find('"', i + 1)
            current.append(text[i:end + 1] if end > 0 else text[i:])
            i = end + 1 if end > 0 else len(text)
            continue
        current.append(ch)
        i += 1
    return None


def _statements(body: str) -> list[str]:
    out = []
    for match in _STATEMENT.finditer(body):
        parsed = _call_args(body, match.end())
        if parsed is None:
            continue
        _args, end = parsed
        stop = end
        if re.match(r"\s*else\b", body[end:]):  # keep the action block: its message says what is forbidden
            depth = 0
            for i in range(end, min(len(body), end + 2000)):
                depth += body[i] in "([{" or -(body[i] in ")]}")
                if body[i] == ";" and depth <= 0:
                    stop = i
                    break
        text = body[match.start():stop].rstrip().rstrip(";")
        out.append(" ".join(f"{text};".split()))
    return out


def _macros(raw: str) -> list[str]:
    out = []
    for match in _MACRO.finditer(raw):
        parsed = _call_args(raw, match.end())
        if parsed is None or len(parsed[0]) < 2:
            continue
        args = parsed[0]
        kind = "assume" if match.group(1).startswith("ASSUME") else "assert"
        prop = args[1]
        if match.group(1) == "ASSERT_NEVER":
            prop = f"!({prop})"
        elif match.group(1) == "ASSERT_IF" and len(args) > 2:
            prop = f"({args[2]}) |-> ({prop})"
        out.append(" ".join(f"{kind} property ({prop}); // `{match.group(1)}({args[0]}, ...)".split()))
    return out


def find(raw: str, expanded: str | None = None) -> list[str]:
    """Every assertion of the module: statements (expanded text when given), then macro calls not already seen."""
    found = _statements(expanded if expanded else raw)
    seen = " ".join(found).replace(" ", "")
    for text in _macros(raw):
        prop = property_of(text)
        if prop is None or prop.replace(" ", "") not in seen:
            found.append(text)
    return found


def property_of(text: str) -> str | None:
    """The bare property of an assertion text: clocking event, `disable iff` and outer parentheses dropped."""
    match = _STATEMENT.search(text)
    if match is None:
        return None
    parsed = _call_args(text, match.end())
    if parsed is None:
        return None
    expr = ",".join(parsed[0]).strip()
    expr = re.sub(r"^@\s*\((?:[^()]|\([^()]*\))*\)\s*", "", expr)
    expr = re.sub(r"^disable\s+iff\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)\s*", "", expr)
    return _strip_parens(expr)


def _strip_parens(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        inner = _call_args(expr, 1)
        if inner is None or inner[1] != len(expr):
            break
        expr = expr[1:-1].strip()
    return expr


def _literal(term: str) -> tuple[bool, str] | None:
    """`x`, `!x`, `~x`, `x == 0`, `x == 1'b1` -> (negated, x); None for anything else."""
    term = _strip_parens(term)
    match = re.fullmatch(rf"({_NOT}?)\s*(\w+)", term)
    if match:
        return bool(match.group(1)), match.group(2)
    match = re.fullmatch(r"(\w+)\s*(==|!=)\s*(?:1'[bB]|')?([01])", term)
    if match:
        return (match.group(3) == "0") ^ (match.group(2) == "!="), match.group(1)
    return None


def forbidden(prop: str) -> tuple[tuple[bool, str], tuple[bool, str]] | None:
    """A property that forbids two literals together, as ((neg, a), (neg, b)): never a and b at once."""
    prop = _strip_parens(prop)
    match = re.fullmatch(rf"{_NOT}\s*\((.*)\)", prop)
    if match:
        parts = re.split(r"&&?", _strip_parens(match.group(1)))
        if len(parts) == 2:
            a, b = _literal(parts[0]), _literal(parts[1])
            if a and b:
                return a, b
        return None
    parts = re.split(r"\|->|\|=>", prop)
    if len(parts) == 2 and "|=>" not in prop:
        a, b = _literal(parts[0]), _literal(parts[1])
        if a and b:
            return a, (not b[0], b[1])  # a |-> !b  ==  never (a && b)
    return None


def constraints(texts: Iterable[str], inputs: set[str], outputs: set[str]) -> list[str]:
    """`constrain` lines for assertions that forbid an input together with an output: drop the input then."""
    lines = []
    for text in texts:
        prop = property_of(text)
        pair = forbidden(prop) if prop else None
        if pair is None:
            continue
        (neg_a, a), (neg_b, b) = pair
        if a in outputs and b in inputs:
            (neg_a, a), (neg_b, b) = (neg_b, b), (neg_a, a)
        if a in inputs and b in outputs and not neg_a:
            test = f"outputs.get({b!r}) == 0" if neg_b else f"outputs.get({b!r})"
            lines.append(f"    if {test}:  # from: {text[:90]}\n        inputs[{a!r}] = 0\n")
        elif a in inputs and b in inputs and not neg_b:  # two inputs never together: drop the second
            test = f"not inputs.get({a!r})" if neg_a else f"inputs.get({a!r})"
            lines.append(f"    if {test}:  # from: {text[:90]}\n        inputs[{b!r}] = 0\n")
    return lines
