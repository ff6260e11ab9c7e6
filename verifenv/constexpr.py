"""Fold Verilog constant expressions (parameter defaults, packed ranges) to integers.

`interface.py` calls `evaluate(text, env)` to turn `WIDTH-1`, `$clog2(DEPTH)` or `8'hFF` into numbers;
anything it does not understand (a macro, a function call, a struct) yields None, never a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<based>(?:\d[\d_]*)?\s*'[sS]?[bBoOdDhH]\s*[0-9a-fA-F_xXzZ?]+)
    | (?P<fill>'[01])
    | (?P<num>\d[\d_]*)
    | (?P<sys>\$[A-Za-z_]\w*)
    | (?P<ident>[A-Za-z_][\w$]*(?:::[A-Za-z_]\w*)?)
    | (?P<op>\*\*|<<<|>>>|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%()<>!~&|^?:,])
    )""",
    re.VERBOSE,
)

_BINARY = {  # precedence, as in IEEE 1800 table 11-2 (higher binds tighter)
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6, "<": 7, "<=": 7, ">": 7, ">=": 7,
    "<<": 8, ">>": 8, "<<<": 8, ">>>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10, "**": 11,
}


class _Unknown(Exception):
    pass


def _literal(text: str) -> int:
    text = text.replace("_", "").replace(" ", "")
    if "'" not in text:
        return int(text)
    _size, rest = text.split("'", 1)
    rest = rest.lstrip("sS")
    base = {"b": 2, "o": 8, "d": 10, "h": 16}[rest[0].lower()]
    digits = rest[1:]
    if any(c in "xXzZ?" for c in digits):
        raise _Unknown(text)
    return int(digits, base)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise _Unknown(text[pos:])
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind).strip()))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], env: Mapping[str, int | None]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.env = env

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise _Unknown(f"expected {value!r}")
        self.pos += 1
        return tok

    def ternary(self) -> int:
        cond = self.expression(1)
        tok = self.peek()
        if tok is not None and tok[1] == "?":
            self.take("?")
            yes = self.ternary()
            self.take(":")
            no = self.ternary()
            return yes if cond else no
        return cond

    def expression(self, min_prec: int) -> int:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "op":
                return left
            prec = _BINARY.get(tok[1])
            if prec is None or prec < min_prec:
                return left
            self.take()
            right = self.expression(prec if tok[1] == "**" else prec + 1)
            left = _apply(tok[1], left, right)

    def unary(self) -> int:
        tok = self.take()
        kind, text = tok
        if kind == "op" and text == "(":
            value = self.ternary()
            self.take(")")
            return value
        if kind == "op" and text in "-+!~":
            value = self.unary()
            return {"-": -value, "+": value, "!": int(not value), "~": ~value}[text]
        if kind in ("num", "based"):
            return _literal(text)
        if kind == "fill":
            return int(text[1])
        if kind == "sys":
            self.take("(")
            arg = self.ternary()
            self.take(")")
            if text == "$clog2":
                return 0 if arg <= 1 else math.ceil(math.log2(arg))
            if text in ("$bits", "$size"):
                raise _Unknown(text)
            raise _Unknown(text)
        if kind == "ident":
            found = self.env.get(text)
            if found is None:
                raise _Unknown(text)
            return found
        raise _Unknown(text)


def _apply(op: str, a: int, b: int) -> int:
    if op in ("/", "%") and b == 0:
        raise _Unknown("division by zero")
    table = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: int(a / b), "%": lambda: a % b,
        "**": lambda: a ** b, "<<": lambda: a << b, ">>": lambda: a >> b, "<<<": lambda: a << b,
        ">>>": lambda: a >> b, "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b,
        "&&": lambda: int(bool(a and b)), "||": lambda: int(bool(a or b)), "==": lambda: int(a == b),
        "!=": lambda: int(a != b), "<": lambda: int(a < b), "<=": lambda: int(a <= b), ">": lambda: int(a > b),
        ">=": lambda: int(a >= b),
    }
    return table[op]()


def evaluate(text: str | None, env: Mapping[str, int | None] | None = None) -> int | None:
    """The integer value of a constant expression, or None when it cannot be folded."""
    if text is None or not text.strip():
        return None
    try:
        parser = _Parser(_tokens(text), env or {})
        value = parser.ternary()
        if parser.peek() is not None:
            return None
        return value
    except (_Unknown, ValueError, KeyError, OverflowError, IndexError):
        return None


def range_width(dims: tuple[str, ...] | list[str], env: Mapping[str, int | None]) -> int | None:
    """The bit count of packed dimensions like ('[WIDTH-1:0]', '[3:0]'); None when one cannot be folded."""
    width = 1
    for dim in dims:
        body = dim.strip()[1:-1].strip()
        if ":" in body and "+:" not in body and "-:" not in body:
            msb_text, lsb_text = body.rsplit(":", 1)
            msb, lsb = evaluate(msb_text, env), evaluate(lsb_text, env)
            if msb is None or lsb is None:
                return None
            width *= abs(msb - lsb) + 1
        else:
            size = evaluate(body, env)
            if size is None or size <= 0:
                return None
            width *= size
    return width
