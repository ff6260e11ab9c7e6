"""Turning generated token ids into text as they come: incremental detokenization and stop sequences.

Incremental decoding follows TGI's `decode_token`: decode a small window before and after the new token and
emit the difference, holding back text that ends in an incomplete UTF-8 character. Used by `server.engine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class IncrementalDecoder:
    """Text of generated tokens, one token at a time, with a few prompt tokens as left context."""

    def __init__(self, tokenizer: _Decoder, prompt_tail: Sequence[int]) -> None:
        self._tok = tokenizer
        self._ids: list[int] = list(prompt_tail)
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def push(self, token_id: int) -> str:
        """Add a token; return the new text it completes ("" while a character is still partial)."""
        self._ids.append(token_id)
        prefix_text = self._tok.decode(self._ids[self._prefix_offset:self._read_offset], skip_special_tokens=False)
        new_text = self._tok.decode(self._ids[self._prefix_offset:], skip_special_tokens=False)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            out = new_text[len(prefix_text):]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return out
        return ""


def find_stop(text: str, new_from: int, stops: Sequence[str]) -> int | None:
    """The end index of the earliest stop sequence that finishes in text[new_from:], or None.

    Only matches that end in the new text are looked for: earlier text was already checked.
    """
    best: int | None = None
    for stop in stops:
        if not stop:
            continue
        start = max(0, new_from - len(stop) + 1)
        pos = text.find(stop, start)
        if pos != -1:
            end = pos + len(stop)
            if best is None or end < best:
                best = end
    return best
