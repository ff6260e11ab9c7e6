"""Span selection with real tree-sitter grammars: each kind cuts where its name says, offsets survive Unicode."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from finetune.corpus.spans import AST_KINDS, Source, parse_source, select_spans

PYTHON = '''import os


def total(items, scale=1):
    """Sum the prices."""
    result = 0
    for item in items:
        if item.price > 0 and not item.hidden:
            result += item.price * scale
    return round(result, 2)


class Cart:
    def add(self, item):
        self.items.append(item)
        return len(self.items)
'''

UNICODE = 'def grüße(ä, a\u0308):\r\n    s = "錯誤😋"\r\n    if ä:\r\n        return s + ä\r\n    return ä\r\n'

GO = ('package main\n\nimport "fmt"\n\nfunc add(a int, b int) int {\n\tif a > b {\n\t\treturn a - b\n\t}\n'
      '\treturn a + b\n}\n\nfunc main() {\n\tfmt.Println(add(1, 2))\n}\n')


def spans_of(text: str, language: str, kind: str, n: int = 20, seed: int = 0, cap: int = 10_000):
    counts: Counter = Counter()
    src = parse_source(text, language, counts)
    got = select_spans(src, n, {kind: 1.0}, random.Random(seed), lambda a, b: b - a <= cap, counts,
                       min_prefix_chars=0)
    return src, got, counts


@pytest.mark.parametrize(("kind", "allowed"), [
    ("function_body", {'"""Sum the prices."""\n    result = 0\n    for item in items:\n        if item.price > 0 and '
                       'not item.hidden:\n            result += item.price * scale\n    return round(result, 2)',
                       "self.items.append(item)\n        return len(self.items)"}),
    ("condition", {"item.price > 0 and not item.hidden"}),
    ("call_arguments", {"result, 2", "item", "self.items"}),
])
def test_ast_kinds_cut_whole_nodes(kind, allowed):
    src, got, _ = spans_of(PYTHON, "python", kind)
    assert {s.kind for s in got} <= {kind, "line_end"}  # once every node is used, line-shaped cursors
    middles = {PYTHON[s.start:s.end] for s in got if s.kind == kind}
    assert middles and middles <= allowed, middles - allowed


@pytest.mark.parametrize("kind", [*AST_KINDS, "ast_aligned", "block_end", "line_end", "char_random", "empty"])
def test_every_kind_is_produced_on_python_and_go(kind):
    for text, lang in ((PYTHON, "python"), (GO, "go")):
        src, got, counts = spans_of(text, lang, kind, n=6)
        assert got, (lang, kind, counts)
        assert counts["parsed"] == 1
        tagged = {s.kind for s in got}
        assert kind in tagged, (lang, kind, tagged)


def test_statement_and_block_end_shapes():
    _, got, _ = spans_of(PYTHON, "python", "statement", n=30)
    assert sum(s.kind == "statement" for s in got) >= 5
    for s in (s for s in got if s.kind == "statement"):
        middle = PYTHON[s.start:s.end]
        assert middle == middle.strip() and middle
    _, got, _ = spans_of(PYTHON, "python", "block_end", n=30)
    for s in (s for s in got if s.kind == "block_end"):
        after = PYTHON[s.end:]
        assert after == "" or after.startswith("\n")  # the middle runs to the end of its block
    _, got, _ = spans_of(PYTHON, "python", "line_end", n=30)
    for s in got:
        assert "\n" not in PYTHON[s.start:s.end] and PYTHON[s.end:s.end + 1] in ("\n", "")


def test_unicode_and_crlf_offsets_are_characters():
    for kind in ("function_body", "condition", "statement", "expression", "ast_aligned", "block_end"):
        src, got, _ = spans_of(UNICODE, "python", kind, n=10)
        assert not src.ascii
        for s in got:
            middle = UNICODE[s.start:s.end]
            assert middle.encode("utf-8").decode("utf-8") == middle
            assert middle.strip(), kind
            b0, b1 = src.to_byte(s.start), src.to_byte(s.end)
            assert src.data[b0:b1].decode("utf-8") == middle
    _, got, _ = spans_of(UNICODE, "python", "condition")
    assert {UNICODE[s.start:s.end] for s in got if s.kind == "condition"} == {"ä"}


def test_token_cap_refuses_big_nodes():
    _, got, _ = spans_of(PYTHON, "python", "function_body", cap=60)
    assert all(s.end - s.start <= 60 for s in got)
    assert {PYTHON[s.start:s.end] for s in got if s.kind == "function_body"} <= {
        "self.items.append(item)\n        return len(self.items)"}


def test_files_that_do_not_parse_fall_back_to_line_spans():
    broken = "def f(:\n    return ((\nclass\n" * 5
    src, got, counts = spans_of(broken, "python", "function_body", n=5)
    assert src.tree is None and counts["parse_errors"] == 1
    assert got and {s.kind for s in got} <= {"line_fallback", "line_end"}


def test_a_crashing_parser_costs_only_the_ast_spans():
    def crash(language_id, text):
        raise RuntimeError("grammar exploded")

    counts: Counter = Counter()
    src = parse_source(PYTHON, "python", counts, parse=crash)
    assert counts["parser_crash"] == 1 and src.tree is None
    got = select_spans(src, 4, {"statement": 1.0, "empty": 1.0}, random.Random(1), lambda a, b: True, counts)
    assert got and {s.kind for s in got} <= {"line_fallback", "empty", "line_end"}


def test_spans_respect_min_prefix_and_are_distinct():
    counts: Counter = Counter()
    src = Source(PYTHON, "python", parse_source(PYTHON, "python", counts).tree)
    got = select_spans(src, 12, {"statement": 1, "line_end": 1}, random.Random(2), lambda a, b: True, counts,
                       min_prefix_chars=40)
    assert all(s.start >= 40 for s in got)
    assert len({(s.start, s.end) for s in got}) == len(got)
