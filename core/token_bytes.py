"""Each token's bytes, for the healing constraint: `core.healing.VocabIndex` over byte strings.

Decoding a byte-level BPE token on its own turns a piece of a multi-byte character into U+FFFD, so an index
over decoded text can never re-type `ä` or `錯誤`. Here every token becomes its bytes, carried as a latin-1
string (one character per byte), and the text to re-type is encoded the same way (`as_bytes`); `VocabIndex`
and `advance` then work unchanged. Used by the server's engine and the exam's generator.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from core.healing import VocabIndex

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # sentencepiece byte fallback


def as_bytes(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


@lru_cache(maxsize=1)
def _byte_level_map() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted: the printable character a byte-level vocabulary uses for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def token_bytes(backend: Any) -> list[str]:
    """Every token id's bytes as a latin-1 string, for a `tokenizers.Tokenizer`."""
    size = backend.get_vocab_size()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    added = {i: t.content for i, t in backend.get_added_tokens_decoder().items()}
    out = [""] * size
    if decoder.get("type") == "ByteLevel":
        table = _byte_level_map()
        for piece, i in backend.get_vocab(with_added_tokens=False).items():
            if i < size:
                out[i] = bytes(table[c] for c in piece if c in table).decode("latin-1")
    else:
        for i in range(size):
            piece = backend.id_to_token(i) or ""
            m = _BYTE_TOKEN.match(piece)
            out[i] = chr(int(m.group(1), 16)) if m else as_bytes(backend.decode([i], skip_special_tokens=False))
    for i, content in added.items():
        if i < size:
            out[i] = as_bytes(content)
    return out


def build_index(backend: Any, excluded: set[int]) -> tuple[VocabIndex, list[str]]:
    texts = token_bytes(backend)
    return VocabIndex(texts, excluded), texts


def index_for(tokenizer: Any, special_ids: set[int] | None = None) -> VocabIndex:
    """The healing index over each token's bytes, for a `tokenizers.Tokenizer` or a transformers one.

    Its entries are bytes carried as latin-1 strings: pass `as_bytes(text)` to `allowed`.
    """
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    return VocabIndex(token_bytes(backend), special_ids)
