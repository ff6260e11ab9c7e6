"""The spool: each kept file's redacted text, with its word index (exact token budgets), on disk between the
two parallel passes, one file per source file so no pass holds the corpus in memory.

An entry is one file (one open per read: opening files, not reading them, is what costs on a busy disk):
a 4-byte length, the `WordIndex` bytes (empty without exact budgets), then the text in UTF-8. `Reader`
keeps the last few entries it read, since neighbouring files show the same related files as context.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from finetune.corpus.tokencount import WordCounter, WordIndex


def entry_path(spool: str, key: int) -> str:
    return os.path.join(spool, f"{key:08d}.spool")


def write(spool: str, key: int, text: str, index: WordIndex | None) -> None:
    blob = index.to_bytes() if index is not None else b""
    with open(entry_path(spool, key), "wb") as fh:
        fh.write(len(blob).to_bytes(4, "little") + blob + text.encode("utf-8"))


def read(spool: str, key: int) -> tuple[str, bytes]:
    """(text, index bytes) of an entry."""
    with open(entry_path(spool, key), "rb") as fh:
        data = fh.read()
    n = int.from_bytes(data[:4], "little")
    return data[4 + n:].decode("utf-8"), data[4:4 + n]


def read_text(spool: str, key: int) -> str:
    return read(spool, key)[0]


class Reader:
    """Entries as (text, `WordIndex` or None), the last `size` of them kept."""

    def __init__(self, spool: str, counter: WordCounter | None, size: int = 32) -> None:
        self.spool, self.counter, self.size = spool, counter, size
        self.recent: OrderedDict[int, tuple[str, WordIndex | None]] = OrderedDict()

    def get(self, key: int) -> tuple[str, WordIndex | None]:
        hit = self.recent.get(key)
        if hit is not None:
            self.recent.move_to_end(key)
            return hit
        text, blob = read(self.spool, key)
        index = WordIndex.from_bytes(self.counter, text, blob) if blob and self.counter is not None else None
        self.recent[key] = (text, index)
        if len(self.recent) > self.size:
            self.recent.popitem(last=False)
        return text, index
