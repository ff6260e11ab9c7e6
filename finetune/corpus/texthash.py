"""Hashes of many substrings of one text at once, in numpy, with no Python string or loop per substring.

A text is turned into its code points `c` once (`TextArrays`), with the prefix sums `G[i]` of
`(c[j] + 1) * B**-j` for j < i, modulo 2**64. The polynomial hash of `text[s:e]`, `sum((c[j] + 1) * B**(e-1-j))`,
is then `(G[e] - G[s]) * B**(e-1)`: one subtraction and one multiplication per substring (B is odd, so B**-1
exists modulo 2**64; unsigned overflow wraps). Code points count one up so that no character hashes as
nothing. Dedup hashes its code tokens this way (`dedup.token_hashes`) and the token counter its words
(`tokencount.WordIndex`): both on the same arrays of a file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

BASE = 0x100000001B3
_BASE_INV = pow(BASE, -1, 1 << 64)
_MASK = (1 << 64) - 1


def substring_hash(s: str) -> int:
    """The hash `TextArrays.hashes` gives `s` (the reference: one character at a time)."""
    value = 0
    for ch in s:
        value = (value * BASE + ord(ch) + 1) & _MASK
    return value


def char_classes(cp: np.ndarray, table: np.ndarray,
                 classify: Callable[[str], int | np.integer[Any]]) -> np.ndarray:
    """The class of each code point: `table[c]` over the Basic Multilingual Plane (`table` has 0x10000
    entries), `classify(chr(c))` for the rare characters beyond it, one by one."""
    cls = table[np.minimum(cp, 0xFFFF)]
    for i in np.flatnonzero(cp > 0xFFFF):
        cls[i] = classify(chr(cp[i]))
    return cls


@functools.cache
def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`BASE**i` and `BASE**-i` modulo 2**64 for i < n (n a power of two, so few sizes are cached)."""
    with np.errstate(over="ignore"):
        up = np.full(n, BASE, dtype=np.uint64)
        down = np.full(n, _BASE_INV, dtype=np.uint64)
        up[0] = down[0] = 1
        return np.cumprod(up), np.cumprod(down)


@dataclass(frozen=True)
class TextArrays:
    """A text's code points (`cp`, uint32) and hash prefix sums (`prefix`, uint64, one longer)."""

    cp: np.ndarray
    prefix: np.ndarray

    @classmethod
    def of(cls, text: str) -> TextArrays:
        cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        n = len(cp)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        if n:
            down = _powers(1 << n.bit_length())[1]
            with np.errstate(over="ignore"):
                np.cumsum((cp + np.uint64(1)) * down[:n], out=prefix[1:])
        return cls(cp, prefix)

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """`[substring_hash(text[s:e]) for s, e in zip(starts, ends)]` (each e > s)."""
        if not len(ends):
            return np.zeros(0, dtype=np.uint64)
        up = _powers(1 << len(self.cp).bit_length())[0]
        with np.errstate(over="ignore"):
            return (self.prefix[ends] - self.prefix[starts]) * up[ends - 1]
