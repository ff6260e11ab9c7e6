"""Exam metrics on hand-made cases, and the paired bootstrap's behaviour."""

from __future__ import annotations

import random

import pytest

from finetune import metrics as M

PY_PREFIX = "def area(width, height):\n    result = "
PY_SUFFIX = "\n    return result\n"


@pytest.mark.parametrize(("pred", "ref", "em", "es"), [
    ("width * height", "width * height", 1.0, 1.0),
    ("width * height  \n", "width * height", 1.0, 14 / 17),
    ("width * heigth", "width * height", 0.0, 1 - 2 / 14),
    ("", "", 1.0, 1.0),
    ("", "abc", 0.0, 0.0),
    ("錯誤 😋", "錯誤 😋", 1.0, 1.0),
])
def test_exact_match_and_edit_similarity(pred, ref, em, es):
    assert M.exact_match(pred, ref) == em
    assert M.edit_similarity(pred, ref) == pytest.approx(es)


def test_identifier_precision_recall_from_tree_sitter():
    s = M.score(PY_PREFIX, "width * height", PY_SUFFIX, "width * depth * height", "python")
    assert s["identifier_precision"] == pytest.approx(2 / 3)
    assert s["identifier_recall"] == 1.0
    s = M.score(PY_PREFIX, "width * height", PY_SUFFIX, "1", "python")
    assert s["identifier_precision"] == 0.0 and s["identifier_recall"] == 0.0
    # identifiers in the prefix or suffix never count, only those inside the completion
    s = M.score(PY_PREFIX, "2", PY_SUFFIX, "3", "python")
    assert s["identifier_precision"] == 1.0 and s["identifier_recall"] == 1.0


@pytest.mark.parametrize(("language", "prefix", "middle", "suffix", "good", "bad"), [
    ("python", PY_PREFIX, "width * height", PY_SUFFIX, "width*height", "width * (height"),
    ("javascript", "function f(a) {\n  return ", "a + 1;", "\n}\n", "a+1;", "a + (1;"),
    ("c", "int f(int a) {\n  return ", "a + 1;", "\n}\n", "a;", "a + ;"),
])
def test_syntax_validity_means_no_new_error_node(language, prefix, middle, suffix, good, bad):
    assert M.score(prefix, middle, suffix, good, language)["syntax_valid"] == 1.0
    assert M.score(prefix, middle, suffix, bad, language)["syntax_valid"] == 0.0


def test_syntax_validity_is_relative_to_the_real_file():
    """A file that already has an error elsewhere does not make every completion invalid."""
    prefix = "def broken(:\n    pass\n\ndef area(w, h):\n    return "
    assert M.score(prefix, "w * h", "\n", "w * h", "python")["syntax_valid"] == 1.0


def test_unknown_language_falls_back_to_words():
    s = M.score("x ", "foo bar", "", "foo baz", "cobol")
    assert s["identifier_precision"] == 0.5 and s["syntax_valid"] != s["syntax_valid"]  # NaN: not measured


def test_summaries_group_and_skip_nan():
    recs = [{"kind": "a", "exact_match": 1.0, "edit_similarity": 1.0, "identifier_precision": 1.0,
             "identifier_recall": 1.0, "syntax_valid": float("nan"), "latency_ms": 10.0},
            {"kind": "b", "exact_match": 0.0, "edit_similarity": 0.5, "identifier_precision": 0.0,
             "identifier_recall": 0.0, "syntax_valid": 1.0, "latency_ms": 30.0}]
    overall = M.summarize(recs)["overall"]
    assert overall["exact_match"] == 0.5 and overall["syntax_valid"] == 1.0 and overall["n"] == 2
    assert overall["latency_ms_mean"] == 20.0
    assert set(M.summarize(recs, lambda r: r["kind"])) == {"a", "b"}


def test_paired_bootstrap_sanity():
    same = [random.Random(1).random() for _ in range(300)]
    ci = M.paired_bootstrap(same, same, 500)
    assert ci.delta == 0 and ci.low == 0 and ci.high == 0
    ci = M.paired_bootstrap([0.0] * 200, [1.0] * 200, 500)
    assert ci.delta == 1 and ci.above_zero
    rnd = random.Random(0)
    a = [float(rnd.random() < 0.3) for _ in range(400)]
    b = [float(rnd.random() < 0.4) for _ in range(400)]  # independent: true difference 0.1
    ci = M.paired_bootstrap(a, b, 2000)
    assert ci.low < 0.1 < ci.high and ci.low < ci.delta < ci.high
    small = M.paired_bootstrap(a[:50], b[:50], 2000)
    assert (small.high - small.low) > (ci.high - ci.low)  # fewer rows, wider interval
    # pairing matters: a constant shift with noisy rows is known exactly
    c = [x + 0.05 for x in a]
    tight = M.paired_bootstrap(a, c, 500)
    assert tight.low == pytest.approx(0.05) and tight.high == pytest.approx(0.05)
    with pytest.raises(ValueError):
        M.paired_bootstrap([1.0], [1.0, 2.0])
