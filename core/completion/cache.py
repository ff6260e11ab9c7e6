"""A completion cache keyed on the text around the cursor.

When the user types the first characters of the suggestion on screen, the prefix grows by exactly those
characters and the suffix stays the same: `lookup` then serves the rest of the suggestion without a new
request. Entries keep only the end of the prefix and the start of the suffix, so huge files stay cheap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

PREFIX_KEY_CHARS = 512
SUFFIX_KEY_CHARS = 256


@dataclass(frozen=True)
class CacheEntry:
    doc: str
    prefix_len: int  # the cursor's offset in the document when the suggestion was made
    prefix_tail: str
    suffix_head: str
    text: str


@dataclass(frozen=True)
class CacheHit:
    text: str   # what remains of the suggestion after what was typed
    typed: str  # the characters of the suggestion typed since it was made


class CompletionCache:
    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int, str, str], CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def put(self, doc: str, prefix: str, suffix: str, text: str, end: int | None = None) -> None:
        """Remember a (post-processed, non-empty) suggestion for the cursor between prefix and suffix.

        `end` is the cursor's offset in the whole document when `prefix` is only a window of it.
        """
        if not text:
            return
        end = len(prefix) if end is None else end
        entry = CacheEntry(doc, end, prefix[-PREFIX_KEY_CHARS:], suffix[:SUFFIX_KEY_CHARS], text)
        key = (doc, entry.prefix_len, entry.prefix_tail, entry.suffix_head)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def lookup(self, doc: str, prefix: str, suffix: str, end: int | None = None) -> CacheHit | None:
        """The rest of a cached suggestion whose first characters were typed (or all of it, at the same spot)."""
        end = len(prefix) if end is None else end
        head = suffix[:SUFFIX_KEY_CHARS]
        with self._lock:
            for entry in reversed(self._entries.values()):
                typed_len = end - entry.prefix_len
                if entry.doc != doc or entry.suffix_head != head or not 0 <= typed_len < len(entry.text):
                    continue
                if typed_len > len(prefix):
                    continue
                before = prefix[:len(prefix) - typed_len]
                if before[-PREFIX_KEY_CHARS:] != entry.prefix_tail:
                    continue
                typed = prefix[len(prefix) - typed_len:]
                if entry.text.startswith(typed):
                    self.hits += 1
                    return CacheHit(entry.text[typed_len:], typed)
            self.misses += 1
            return None

    def clear(self, doc: str | None = None) -> None:
        with self._lock:
            if doc is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[0] == doc]:
                    del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
