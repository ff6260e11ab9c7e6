"""UTF-16 positions (the LSP default) with ä, a + combining mark, 錯誤, 😋 and CRLF line ends."""

from __future__ import annotations

import pytest

from lsp.positions import offset_at, position_at, split_at

TEXT = "aä\r\na\u0308b\n錯誤x\r😋y\r\nend"


@pytest.mark.parametrize("line, character, expected", [
    (0, 0, 0), (0, 1, 1), (0, 2, 2),            # "aä": one UTF-16 unit each
    (0, 9, 2),                                   # past the end of the line: the end of the line (before \r\n)
    (1, 1, 5), (1, 2, 6), (1, 3, 7),             # "a" + U+0308 + "b": the mark is its own unit
    (2, 2, 10), (2, 3, 11),                      # "錯誤x" after a bare \n
    (3, 2, 13), (3, 3, 14),                      # "😋y" after a bare \r: the emoji is 2 units, 1 code point
    (3, 1, 12),                                  # inside the surrogate pair: stays before the emoji
    (4, 3, 19), (9, 0, 19), (-1, 4, 0),          # last line without an end; past the end; negative
])
def test_offset_at_utf16(line, character, expected):
    assert offset_at(TEXT, line, character) == expected


def test_round_trip_every_offset():
    for offset in range(len(TEXT) + 1):
        if TEXT[offset - 1:offset + 1] == "\r\n":
            continue  # between \r and \n is not a position
        line, character = position_at(TEXT, offset)
        assert offset_at(TEXT, line, character) == offset


def test_utf8_and_utf32_encodings():
    assert offset_at(TEXT, 0, 3, "utf-8") == 2          # ä is 2 bytes
    assert offset_at(TEXT, 3, 4, "utf-8") == 13         # 😋 is 4 bytes
    assert offset_at(TEXT, 3, 1, "utf-32") == 13        # one code point
    assert position_at(TEXT, 13, "utf-8") == (3, 4)


def test_split_windows_huge_documents():
    text = "x = 1\n" * 100_000
    cursor = split_at(text, 50_000, 4)
    assert cursor.offset == 300_004
    assert len(cursor.prefix) == 100_000 and text[:cursor.offset].endswith(cursor.prefix)
    assert len(cursor.suffix) == 20_000 and text[cursor.offset:].startswith(cursor.suffix)


def test_split_reports_the_clamped_position():
    cursor = split_at(TEXT, 0, 99)
    assert (cursor.offset, cursor.line, cursor.character) == (2, 0, 2)
    cursor = split_at(TEXT, 3, 1)  # inside the emoji's surrogate pair
    assert (cursor.offset, cursor.line, cursor.character) == (12, 3, 0)
    cursor = split_at(TEXT, 42, 0)  # past the last line
    assert (cursor.offset, cursor.line, cursor.character) == (19, 4, 3)
