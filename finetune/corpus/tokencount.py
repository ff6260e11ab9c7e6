"""Exact token counts of pieces of a file in the target tokenizer, without encoding every piece.

A byte-level BPE tokenizer (GPT-2 family: SmolLM2, StarCoder, the test tokenizer) splits text into words with
one fixed regex and encodes every word on its own, so a text's token count is the sum of its words' counts.
`WordIndex` splits a file once (`word_starts`: the regex's split, computed in numpy; cumulative token counts,
`WordCounter.cumulative`); a piece `text[a:b]` is counted exactly by splitting again only its two ends, where
a cut can change how the nearby words fall: the regex looks at most one character past a word, so every word
of the file that ends two characters before `b` is a word of the piece too, and from the first word boundary
the piece shares with the file, the words agree.
Words are encoded once per process (`WordCounter` caches them).

Anything else is counted by the tokenizer itself, still exactly (`WordIndex` in "encode" mode): tokenizers
of another shape (a normalizer, another pre-tokenizer) and texts with a character whose Unicode class this
Python's regex does not share with the tokenizer's (checked per character against the tokenizer's own
pre-tokenizer, once per process); and, in a file that spells one of the tokenizer's added tokens, the pieces
that hold one.
"""

from __future__ import annotations

import functools
import re
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate, repeat

import numpy as np

from finetune.corpus.texthash import TextArrays, char_classes

# A cut snaps to a line boundary within this many characters (render.SNAP_CHARS).
SNAP_CHARS = 400
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _ranges(flags: list[bool]) -> str:
    """A regex character class body for the code points `i` where `flags[i]` holds."""
    out, start = [], None
    for cp, ok in enumerate(flags):
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, len(flags) - 1))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in out)


def _word_regex() -> re.Pattern[str]:
    """GPT-2's split `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+` in `re`, over
    the Basic Multilingual Plane (`re` looks such a class up in a table; a class with wider characters is
    scanned range by range, several times slower): `WordCounter.scan_text` stands in for wider characters."""
    chars = [chr(cp) for cp in range(0x10000)]
    letters = _ranges([c.isalpha() for c in chars])  # Unicode categories L*
    numbers = _ranges([c.isnumeric() and not c.isalpha() for c in chars])  # categories N*
    ws = _WS
    # `'(?:s|t|...)` tries the contractions in the same order as `'s|'t|...`, testing the quote once.
    return re.compile(rf"'(?:s|t|re|ve|m|ll|d)| ?[{letters}]+| ?[{numbers}]+| ?[^{ws}{letters}{numbers}]+"
                      rf"|[{ws}]+(?![^{ws}])|[{ws}]+")


_WIDE = re.compile("[\U00010000-\U0010ffff]")  # characters beyond the Basic Multilingual Plane
_NON_ASCII = re.compile("[^\x00-\x7f]")
_OTHER, _LETTER, _NUMBER, _SPACE = 0, 1, 2, 3
_QUOTE, _BLANK = 0x27, 0x20


@functools.cache
def _split_classes() -> np.ndarray:
    """The class of every code point of the Basic Multilingual Plane in `_word_regex`: letter, number,
    whitespace (`_WS`) or other (uint8)."""
    chars = [chr(cp) for cp in range(0x10000)]
    letter = np.fromiter(map(str.isalpha, chars), dtype=bool, count=len(chars))
    number = np.fromiter(map(str.isnumeric, chars), dtype=bool, count=len(chars)) & ~letter
    space = np.zeros(len(chars), dtype=bool)
    space[[m.start() for m in re.finditer(f"[{_WS}]", "".join(chars))]] = True
    out = np.full(len(chars), _OTHER, dtype=np.uint8)
    out[letter], out[number], out[space] = _LETTER, _NUMBER, _SPACE
    return out


def word_starts(text: str, cp: np.ndarray) -> np.ndarray:
    """Where each word of `_word_regex`'s split of `text` starts, then `len(text)` (int64), from the code
    points `cp`, without the regex (tested equal on real files and on random strings of every class):

    - a word is a run of one class: letters, numbers, whitespace or other characters;
    - a whitespace run followed by a non-space character gives up its last character, which starts a word
      (`\\s+(?!\\S)`), and when that is a blank it joins the word after it (` ?\\p{L}+` and the like);
    - a quote that starts a word and is followed by s, t, m, d, re, ve or ll is a word of its own with them
      (`'s|'t|...`, tried first): "'sa" is "'s" and "a". A quote after an other character is inside that
      run, and after a joining blank it is the run " '...", so neither starts a contraction.
    """
    n = len(cp)
    if not n:
        return np.zeros(1, dtype=np.int64)
    table = _split_classes()
    cls = char_classes(cp, table, lambda c: table[ord(_stand_in(c))])  # beyond the table: as the regex sees it
    start = np.empty(n + 1, dtype=bool)
    start[0] = start[n] = True
    np.not_equal(cls[1:], cls[:-1], out=start[1:n])
    space = cls == _SPACE
    after_space = np.flatnonzero(space[:-1] & ~space[1:]) + 1  # the first non-space after a whitespace run
    start[after_space - 1] = True
    start[after_space[cp[after_space - 1] == _BLANK]] = False
    for p in np.flatnonzero((cp == _QUOTE) & start[:n]).tolist():
        follow = text[p + 1:p + 3]
        k = 2 if follow[:1] in ("s", "t", "m", "d") and follow else 3 if follow in ("re", "ve", "ll") else 0
        if k:
            start[p + 1] = False
            start[p + k] = True
    return np.flatnonzero(start)


class _WordCache(dict):
    """word -> token count; a missing word is counted on lookup (a miss costs no Python-level test per word)."""

    def __init__(self, count) -> None:
        super().__init__()
        self.count = count

    def __missing__(self, word: str) -> int:
        n = self[word] = self.count(word)
        return n


def _stand_in(c: str) -> str:
    """A character of the Basic Multilingual Plane in the same class of the split as `c` (no whitespace lies
    beyond it): a letter, a number, or neither."""
    return "\u00aa" if c.isalpha() else "\u00b2" if c.isnumeric() else "\u00a7"


def _byte_chars() -> dict[int, str]:
    """GPT-2's bytes_to_unicode: the printable character byte-level BPE writes for each byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, chars, strict=True)}


def is_byte_level_bpe(tokenizer) -> bool:
    """Whether `tokenizer` is a plain GPT-2-style byte-level BPE (what `WordCounter`'s fast path assumes)."""
    from tokenizers import models, pre_tokenizers

    pre, model = tokenizer.pre_tokenizer, tokenizer.model
    return (tokenizer.normalizer is None and isinstance(pre, pre_tokenizers.ByteLevel) and not pre.add_prefix_space
            and pre.use_regex and isinstance(model, models.BPE) and model.dropout is None)


class WordCounter:
    """Token counts of words (cached), and whether a text can be counted word by word."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.fast = is_byte_level_bpe(tokenizer)
        self.word = _word_regex() if self.fast else None
        chars = _byte_chars()
        self.byte_table = "".join(chars[b] for b in range(256))  # str.translate indexes it by byte value
        self.cache = _WordCache(self._encode_word)
        self.by_hash: dict[int, int] = {}  # texthash of a word -> its token count
        self.good_chars: set[str] = set()
        self.bad_chars: set[str] = set()
        self.added = tuple(t.content for t in tokenizer.get_added_tokens_decoder().values() if t.content)
        # One pass finds any of them (`in` per token scans the text once each; these share their first "<").
        self.added_regex = re.compile("|".join(map(re.escape, self.added))) if self.added else None

    def encode_count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    def _char_agrees(self, c: str) -> bool:
        """Whether our regex splits text around `c` as the tokenizer's pre-tokenizer does."""
        probe = f"a{c}1{c} {c}{c}!{c}  {c}x{c}\n{c}a {c}1{c}"
        try:
            ref = [w for w, _ in self.tokenizer.pre_tokenizer.pre_tokenize_str(probe)]
        except Exception:  # a lone surrogate: the tokenizer takes no such string
            return False
        assert self.word is not None  # only a fast counter is asked
        scan = self.scan_text(probe)
        ends = list(accumulate(map(len, self.word.findall(scan))))
        return ref == [self.byte_level(probe[a:b]) for a, b in zip([0, *ends], ends, strict=False)]

    @staticmethod
    def scan_text(text: str) -> str:
        """`text` with every character beyond the Basic Multilingual Plane replaced by a stand-in of its class
        (same length, same word boundaries): what the word regex runs on."""
        # A regex finds and replaces the rare wide characters in C; `max(text)` and `str.translate` with a dict
        # both go through Python objects character by character (several times slower on a large file).
        if text.isascii() or not _WIDE.search(text):
            return text
        return _WIDE.sub(lambda m: _stand_in(m.group()), text)

    def usable(self, text: str) -> bool:
        """Whether `text` can be counted word by word (else the tokenizer counts it). Added tokens do not
        prevent it: a piece holding one is counted by the tokenizer (`WordIndex.count`)."""
        if not self.fast:
            return False
        if text.isascii():
            return True
        for c in set(_NON_ASCII.findall(text)) - self.good_chars:
            if c in self.bad_chars:
                return False
            if self._char_agrees(c):
                self.good_chars.add(c)
            else:
                self.bad_chars.add(c)
                return False
        return True

    def holds_added(self, text: str, a: int = 0, b: int | None = None) -> bool:
        """Whether `text[a:b]` spells one of the tokenizer's added tokens (which it splits out first)."""
        return self.added_regex is not None and self.added_regex.search(text, a, len(text) if b is None else b) \
            is not None

    def byte_level(self, word: str) -> str:
        """The word as byte-level BPE spells it: its UTF-8 bytes, each as its printable stand-in."""
        return word.encode("utf-8", "surrogatepass").decode("latin-1").translate(self.byte_table)

    def _encode_word(self, word: str) -> int:
        # The BPE model alone: ~2x faster a word than a batch through the tokenizer.
        return len(self.tokenizer.model.tokenize(self.byte_level(word)))

    def word_count(self, w: str) -> int:
        return self.cache[w]

    def cumulative(self, text: str, arrays: TextArrays, starts: np.ndarray) -> np.ndarray:
        """Cumulative token counts of the words of `text` that start at `starts` (uint32, from 0).

        Words are told apart by their 64-bit `texthash` (each distinct one looked up once per file, a new one
        counted by the BPE model once per process): two different words would have to share a hash for a
        count to be wrong, about one chance in 10**7 over a million distinct words."""
        hashes = arrays.hashes(starts[:-1], starts[1:])
        distinct, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        counts = np.fromiter(map(self.by_hash.get, distinct.tolist(), repeat(-1)), dtype=np.int64,
                             count=len(distinct))
        for j in np.flatnonzero(counts < 0).tolist():
            i = int(first[j])
            counts[j] = self.by_hash[int(distinct[j])] = self.cache[text[starts[i]:starts[i + 1]]]
        cum = np.zeros(len(hashes) + 1, dtype=np.int64)
        np.cumsum(counts[inverse], out=cum[1:])
        return cum.astype(np.uint32)


def _word_end(word: re.Pattern[str], scan: str, pos: int, end: int) -> int:
    """Where the word of `scan` starting at `pos` ends (the split matches at every character)."""
    match = word.match(scan, pos, end)
    assert match is not None
    return match.end()


class WordIndex:
    """A file's words (or, in "encode" mode, its tokens) and cumulative token counts: exact piece counts and
    token-budgeted cuts (`count`, `tail_start`, `head_end`) for its examples and for rows showing it as context.

    A file that spells one of the tokenizer's added tokens (`holds_added`; a model's special tokens written in
    code or docs) keeps words mode: only a piece holding one is encoded, since the tokenizer splits those out
    before the word split, and a piece without one splits exactly as the words around it say.
    """

    def __init__(self, counter: WordCounter, text: str, bounds, cum, words_mode: bool,
                 holds_added: bool = False) -> None:
        self.counter, self.text, self.bounds, self.cum, self.words_mode = counter, text, bounds, cum, words_mode
        self.holds_added = holds_added
        self._scan: str | None = None
        self.chars_per_token = 0.95 * len(text) / max(cum[-1], 1)

    @classmethod
    def build(cls, counter: WordCounter, text: str, arrays: TextArrays | None = None) -> WordIndex:
        """The index of `text`; `arrays` is `TextArrays.of(text)` when the caller has it."""
        if counter.usable(text):
            arrays = TextArrays.of(text) if arrays is None else arrays
            starts = word_starts(text, arrays.cp)
            bounds, cum = array("I"), array("I")
            bounds.frombytes(starts.astype(np.uint32).tobytes())
            cum.frombytes(counter.cumulative(text, arrays, starts).tobytes())
            return cls(counter, text, bounds, cum, True, counter.holds_added(text))
        offsets = counter.tokenizer.encode(text, add_special_tokens=False).offsets if text else []
        bounds = array("I", sorted({0, len(text), *(s for s, _ in offsets)}))
        return cls(counter, text, bounds, array("I", range(len(bounds))), False)

    def to_bytes(self) -> bytes:
        mode = int(self.words_mode) | int(self.holds_added) << 1
        return array("I", [len(self.bounds), mode]).tobytes() + self.bounds.tobytes() + self.cum.tobytes()

    @classmethod
    def from_bytes(cls, counter: WordCounter, text: str, data: bytes) -> WordIndex:
        head = array("I")
        head.frombytes(data[:8])
        n, mode = head
        bounds, cum = array("I"), array("I")
        bounds.frombytes(data[8:8 + 4 * n])
        cum.frombytes(data[8 + 4 * n:8 + 8 * n])
        return cls(counter, text, bounds, cum, bool(mode & 1), bool(mode & 2))

    # -- counting --------------------------------------------------------------------------------------------
    def count(self, a: int, b: int) -> int:
        """Exactly how many tokens `text[a:b]` encodes to."""
        if b <= a:
            return 0
        if not self.words_mode or (self.holds_added and self.counter.holds_added(self.text, a, b)):
            return self.counter.encode_count(self.text[a:b])
        text, bounds, counter, word = self.text, self.bounds, self.counter, self.counter.word
        assert word is not None  # words mode is only chosen with a fast counter
        if self._scan is None:
            self._scan = counter.scan_text(text)
        scan = self._scan
        n, pos = 0, a
        i = bisect_left(bounds, a)
        while pos < b and bounds[i] != pos:  # the piece's first words, until they meet a boundary of the file
            end = _word_end(word, scan, pos, b)
            n += counter.word_count(text[pos:end])
            pos = end
            while bounds[i] < pos:
                i += 1
        if pos >= b:
            return n
        j = bisect_right(bounds, b - 3) - 1  # every word of the file ending by here is a word of the piece
        if j > i:
            n += self.cum[j] - self.cum[i]
            pos = bounds[j]
        while pos < b:  # the piece's last words
            end = _word_end(word, scan, pos, b)
            n += counter.word_count(text[pos:end])
            pos = end
        return n

    # -- cuts ------------------------------------------------------------------------------------------------
    def tail_start(self, a: int, limit: int) -> int:
        """Where the longest prefix ending at `a` within `limit` tokens starts (at a line start when near)."""
        if limit <= 0 or a <= 0:
            return a if limit <= 0 else 0
        bounds, cum, text = self.bounds, self.cum, self.text
        ia = bisect_right(bounds, a) - 1
        j = bisect_left(cum, cum[ia] - limit, 0, ia + 1)
        while j <= ia and self.count(bounds[j], a) > limit:
            j += 1
        if j > ia:  # not even the last word before the cursor fits
            return a
        while j > 0 and self.count(bounds[j - 1], a) <= limit:
            j -= 1
        cut = bounds[j]
        if cut == 0:
            return 0
        nl = text.find("\n", cut, a)
        if nl != -1 and nl - cut < SNAP_CHARS and self.count(nl + 1, a) <= limit:
            return nl + 1
        return cut

    def head_end(self, b: int, limit: int) -> int:
        """Where the longest suffix starting at `b` within `limit` tokens ends (at a line end when near)."""
        bounds, cum, text = self.bounds, self.cum, self.text
        if limit <= 0 or b >= len(text):
            return b
        ib = bisect_left(bounds, b)
        j = max(bisect_right(cum, cum[ib] + limit) - 1, ib)
        while j > ib and self.count(b, bounds[j]) > limit:
            j -= 1
        if self.count(b, bounds[j]) > limit:  # not even the rest of the cursor's word fits
            return b
        while j + 1 < len(bounds) and self.count(b, bounds[j + 1]) <= limit:
            j += 1
        cut = bounds[j]
        if cut >= len(text):
            return len(text)
        nl = text.rfind("\n", b, cut)
        if nl != -1 and cut - nl < SNAP_CHARS and self.count(b, nl + 1) <= limit:
            return nl + 1
        return cut
