"""LSP positions to string offsets and back, in UTF-16 code units as the protocol says (or UTF-8/32 when
the client negotiated them). Lines end at \\n, \\r\\n or \\r only; a character past the end of its line
means the end of the line, a line past the end of the document means the end of the document.

Code units are counted by pygls's `PositionCodec`. Its position conversion is not used: it splits lines as
`str.splitlines` does (also at U+2028, \\x0c, ...), moves a character inside a surrogate pair past the pair,
and clamps a character past the end of the last line to one before its end.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pygls.workspace.position_codec import PositionCodec

_EOL = re.compile(r"\r\n|\r|\n")


@functools.cache
def _codec(encoding: str) -> PositionCodec:
    """The codec of a negotiated position encoding (UTF-16, the protocol's default, for any other name)."""
    return PositionCodec(encoding)


def line_starts(text: str) -> list[int]:
    """Offsets at which each line starts."""
    return [0] + [m.end() for m in _EOL.finditer(text)]


def _line_end(text: str, start: int) -> int:
    m = _EOL.search(text, start)
    return m.start() if m else len(text)


def locate(text: str, line: int, character: int, encoding: str = "utf-16") -> tuple[int, int, int]:
    """(offset, line, character) of an LSP position, the position clamped to the document."""
    if line < 0:
        return 0, 0, 0
    start = 0
    if line > 0:
        seen = 0
        for m in _EOL.finditer(text):  # stops at the cursor's line: no need to scan the rest of a big file
            seen += 1
            if seen == line:
                start = m.end()
                break
        else:
            last, col = position_at(text, len(text), encoding)
            return len(text), last, col
    end = _line_end(text, start)
    units_of = _codec(encoding).impl.code_units_for_char
    units = 0
    i = start
    while i < end and units < character:
        step = units_of(text[i])
        if units + step > character:
            break  # inside a surrogate pair / multi-byte character: stay before it
        units += step
        i += 1
    return i, line, units


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """The string offset of an LSP position (clamped to the document)."""
    return locate(text, line, character, encoding)[0]


def position_at(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    """The LSP (line, character) of a string offset."""
    offset = max(0, min(offset, len(text)))
    starts = line_starts(text)
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    start = starts[lo]
    return lo, _codec(encoding).client_num_units(text[start:offset])


@dataclass(frozen=True)
class Cursor:
    prefix: str
    suffix: str
    offset: int
    line: int       # the position, clamped to the document
    character: int


PREFIX_WINDOW = 100_000
SUFFIX_WINDOW = 20_000


def split_at(text: str, line: int, character: int, encoding: str = "utf-16") -> Cursor:
    """The text before and after a position, windowed so huge files cost no more than big ones."""
    offset, line, character = locate(text, line, character, encoding)
    return Cursor(text[max(0, offset - PREFIX_WINDOW):offset], text[offset:offset + SUFFIX_WINDOW], offset, line,
                  character)
