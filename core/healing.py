"""Token healing: when the cursor sits inside a token, back off and make the model re-type the cut text.

A prompt whose prefix ends mid-word (`self.res|`) tokenizes into a token no training text ever ended on,
and a small model then starts a new word. `rewind_prefix` removes the prefix's last token(s); generation
is constrained so the middle starts with the removed text (`VocabIndex.allowed` gives the tokens that keep
it consistent, `healing_grammar` says the same to real TGI as a regex), and `strip_healed` returns only
what follows the cursor. Pure Python: the server, the exam and the language server all use it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast


class _Tokenizer(Protocol):
    def encode(self, text: str, *args, **kwargs): ...


@dataclass(frozen=True)
class Rewind:
    prefix: str   # the prefix with its last token(s) removed
    removed: str  # the text the middle must start with


def _offsets(tokenizer: _Tokenizer, text: str) -> list[tuple[int, int]]:
    try:
        enc = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:
        enc = tokenizer.encode(text)
    offsets = getattr(enc, "offsets", None)
    if offsets is None:  # a transformers tokenizer: ask for offsets explicitly
        call = cast(Callable[..., Any], tokenizer)  # transformers tokenizers are callable
        offsets = call(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [tuple(o) for o in offsets]


def rewind_prefix(prefix: str, tokenizer: _Tokenizer, tokens: int = 1, max_chars: int = 32) -> Rewind:
    """Remove the last `tokens` token(s) of `prefix` (never more than `max_chars` characters, never a newline).

    Nothing is removed when the prefix ends with whitespace: the boundary then falls between tokens already.
    """
    if not prefix or prefix[-1].isspace():
        return Rewind(prefix, "")
    offsets = _offsets(tokenizer, prefix)
    if not offsets:
        return Rewind(prefix, "")
    start = offsets[max(0, len(offsets) - tokens)][0]
    start = max(start, len(prefix) - max_chars)
    newline = prefix.rfind("\n", start)
    if newline != -1:
        start = newline + 1
    # A token's offsets can end inside a combining sequence; never split a grapheme's base from its marks.
    while start > 0 and _is_mark(prefix[start]):
        start -= 1
    return Rewind(prefix[:start], prefix[start:])


def _is_mark(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch).startswith("M")


class VocabIndex:
    """Which tokens keep generated text consistent with text it must start with.

    Built once per tokenizer from each token's text (over its bytes: `core.token_bytes.index_for`);
    `allowed(remaining)` is fast (a bisect for the tokens that start with `remaining`, a dict lookup for each
    prefix of `remaining`).
    """

    def __init__(self, token_texts: list[str], excluded: set[int] | None = None) -> None:
        excluded = excluded or set()
        pairs = sorted((t, i) for i, t in enumerate(token_texts) if t and i not in excluded)
        self._texts = [t for t, _ in pairs]
        self._ids = [i for _, i in pairs]
        self._by_text: dict[str, list[int]] = {}
        for t, i in pairs:
            self._by_text.setdefault(t, []).append(i)

    def allowed(self, remaining: str) -> list[int]:
        """Token ids whose text starts with `remaining`, or is a non-empty prefix of it."""
        if not remaining:
            return []
        out: list[int] = []
        lo = bisect.bisect_left(self._texts, remaining)
        hi = lo
        while hi < len(self._texts) and self._texts[hi].startswith(remaining):
            hi += 1
        out.extend(self._ids[lo:hi])
        for n in range(1, len(remaining)):
            out.extend(self._by_text.get(remaining[:n], ()))
        return out


def advance(remaining: str, token_text: str) -> str:
    """What is still to be re-typed after the model produced `token_text`."""
    if token_text.startswith(remaining):
        return ""
    if remaining.startswith(token_text):
        return remaining[len(token_text):]
    return ""  # the constraint was given up (no token fitted); nothing more to enforce


def strip_healed(generated: str, removed: str) -> str:
    """The part of a healed generation that follows the cursor."""
    if removed and generated.startswith(removed):
        return generated[len(removed):]
    return generated


def healing_grammar(removed: str) -> dict[str, str]:
    """TGI's `grammar` parameter that makes real TGI start its output with `removed`."""
    return {"type": "regex", "value": re.escape(removed) + r"[\s\S]*"}
