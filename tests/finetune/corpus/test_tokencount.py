"""Exact token counts from a file's word index, checked against the tokenizer itself on real code."""

from __future__ import annotations

import random

import pytest
from tokenizers import Tokenizer

from finetune.corpus.tokencount import WordCounter, WordIndex, is_byte_level_bpe
from tests.finetune.corpus.conftest import package_source

# Non-ASCII text the way real code has it: accents, CJK, box drawing, combining marks, emoji beyond the
# Basic Multilingual Plane, odd whitespace (no-break space, ideographic space, U+2028), CRLF line ends.
ODD = ("# café naïve — 日本語のコメント ┌─┐ 👍🏽 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ① Ⅻ ٣\r\n"
       "name\u00a0=\u3000'x'\u2028y = \"ünïcödé\"  \t \n\n    return  f'{a!r:>10}'  # ‘quotes’ e\u0301\n")


def _sources() -> list[str]:
    texts = [p.read_text() for p in sorted(package_source("tqdm").rglob("*.py"))[:12]]
    texts.append((package_source("rich") / "_emoji_codes.py").read_text()[:40_000])  # emoji: astral chars
    texts.append((package_source("rich") / "box.py").read_text())  # box drawing characters
    texts.append(ODD * 20)
    return texts


def _tokenizers(tiny_tokenizer, smollm2: bool) -> list[Tokenizer]:
    out = [tiny_tokenizer]
    if smollm2:
        from tests.conftest import SMOLLM2_DIR

        if (SMOLLM2_DIR / "tokenizer.json").is_file():
            out.append(Tokenizer.from_file(str(SMOLLM2_DIR / "tokenizer.json")))
    return out


@pytest.mark.parametrize("smollm2", [False, True])
def test_piece_counts_and_cuts_are_exact(tiny_tokenizer, smollm2):
    toks = _tokenizers(tiny_tokenizer, smollm2)
    if smollm2 and len(toks) == 1:
        pytest.skip("no SmolLM2 tokenizer")
    tok = toks[-1]
    counter = WordCounter(tok)
    assert counter.fast and is_byte_level_bpe(tok)

    def n(s: str) -> int:
        return len(tok.encode(s, add_special_tokens=False).ids)

    rng = random.Random(0)
    for text in _sources():
        index = WordIndex.build(counter, text)
        assert index.words_mode
        assert index.cum[-1] == n(text)
        again = WordIndex.from_bytes(counter, text, index.to_bytes())
        for _ in range(60):
            a = rng.randrange(len(text))
            b = min(len(text), a + rng.choice([1, 2, 3, 7, 40, 300, 5000]))
            assert again.count(a, b) == n(text[a:b]), (text[a:b][:60], a, b)
            limit = rng.choice([1, 3, 50, 400])
            start, end = again.tail_start(b, limit), again.head_end(a, limit)
            assert start <= b and n(text[start:b]) <= limit
            assert end >= a and n(text[a:end]) <= limit
            # A cut not snapped to a line is the longest at word granularity: one more word would not fit.
            bounds = list(again.bounds)
            if start > 0 and text[start - 1] != "\n":
                assert n(text[max(x for x in bounds if x < start):b]) > limit
            if end < len(text) and text[end - 1] != "\n":
                assert n(text[a:min(x for x in bounds if x > end)]) > limit


def test_added_tokens_in_the_text_are_counted_by_the_tokenizer(tiny_tokenizer):
    counter = WordCounter(tiny_tokenizer)
    special = next(t.content for t in tiny_tokenizer.get_added_tokens_decoder().values())
    text = f"def f():\n    return '{special}'  # the special token, spelled in code\n" * 30
    index = WordIndex.build(counter, text)
    assert index.words_mode and index.holds_added  # pieces holding the token are encoded, the others counted
    n = lambda s: len(tiny_tokenizer.encode(s, add_special_tokens=False).ids)  # noqa: E731
    at = text.index(special)
    pieces = [(0, len(text)), (5, 300), (17, 18), (100, 1000), (0, at), (at, at + len(special)), (0, at + 3),
              (at + 2, at + 40), (at - 7, at + len(special) + 2), (at + len(special), 500)]
    for a, b in pieces:
        assert index.count(a, b) == n(text[a:b]), (a, b)
    again = WordIndex.from_bytes(counter, text, index.to_bytes())
    assert again.holds_added and [again.count(a, b) for a, b in pieces] == [n(text[a:b]) for a, b in pieces]
    start = index.tail_start(900, 40)
    assert 20 <= n(text[start:900]) <= 40  # within the budget, and most of it used
    for cursor in range(0, len(text), 97):  # budgeted cuts stay within the budget around the token too
        assert n(text[index.tail_start(cursor, 12):cursor]) <= 12 and n(text[cursor:index.head_end(cursor, 12)]) <= 12


def test_other_tokenizer_shapes_fall_back_to_the_tokenizer():
    from tokenizers import models, normalizers, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    assert not is_byte_level_bpe(tok)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert not is_byte_level_bpe(tok)
    assert not WordCounter(tok).usable("x = 1\n")


def test_word_starts_are_the_regex_split():
    import random
    from itertools import accumulate

    from finetune.corpus.texthash import TextArrays
    from finetune.corpus.tokencount import WordCounter, _word_regex, word_starts
    from tests.finetune.corpus.conftest import package_source

    regex = _word_regex()

    def reference(text: str) -> list[int]:
        return [0, *accumulate(map(len, regex.findall(WordCounter.scan_text(text))))]

    texts = [p.read_text() for p in sorted(package_source("click").rglob("*.py"))]
    rng = random.Random(0)
    # every class and every branch: letters (ASCII, accented, beyond the plane), numbers (digits, superscripts,
    # beyond the plane), quotes before contraction letters, blanks, other whitespace (in and out of `_WS`)
    alphabet = ["a", "Z", "é", "\U0001d49c", "1", "²", "\U0001d7d8", "'", "s", "t", "r", "e", "v", "l", "m", "d",
                " ", " ", "\n", "\t", "\u00a0", "\u3000", "\x1c", "!", ".", "_", "\U0001f600", "\ud800"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(5000)]
    for text in texts:
        assert word_starts(text, TextArrays.of(text).cp).tolist() == reference(text), repr(text[:60])
