from __future__ import annotations

from core import healing, token_bytes


def test_rewind_removes_the_partial_word(tiny_tokenizer):
    r = healing.rewind_prefix("def f(x):\n    return x.res", tiny_tokenizer)
    assert r.removed and "res".endswith(r.removed) or r.removed.endswith("res")
    assert r.prefix + r.removed == "def f(x):\n    return x.res"
    assert "\n" not in r.removed


def test_no_rewind_after_whitespace(tiny_tokenizer):
    assert healing.rewind_prefix("x = 1\n", tiny_tokenizer).removed == ""
    assert healing.rewind_prefix("", tiny_tokenizer).removed == ""


def test_rewind_keeps_combining_marks_with_base(tiny_tokenizer):
    text = "name = 'a\u0308"
    r = healing.rewind_prefix(text, tiny_tokenizer)
    assert r.prefix + r.removed == text
    assert not r.removed or not healing._is_mark(r.removed[0])


def test_vocab_index_allowed():
    idx = healing.VocabIndex(["re", "res", "result", "resu", "x", "", "r"])
    assert sorted(idx.allowed("res")) == [0, 1, 2, 3, 6]
    assert idx.allowed("") == []
    assert sorted(idx.allowed("resu")) == sorted([0, 1, 2, 3, 6])


def test_advance_and_strip():
    assert healing.advance("sult", "su") == "lt"
    assert healing.advance("lt", "lt(") == ""
    assert healing.strip_healed("result = 1", "res") == "ult = 1"
    assert healing.strip_healed("other", "res") == "other"


def test_grammar_is_tgi_regex():
    g = healing.healing_grammar("x.re")
    assert g["type"] == "regex" and g["value"].startswith(r"x\.re")


def test_index_from_tokenizer(tiny_tokenizer):
    idx = token_bytes.index_for(tiny_tokenizer)
    ids = idx.allowed("ret")
    assert ids and all(tiny_tokenizer.decode([i]).startswith("ret") or "ret".startswith(tiny_tokenizer.decode([i]))
                       for i in ids)


def test_index_can_retype_non_ascii(tiny_tokenizer):
    """Byte-level tokens cut multi-byte characters; the index works on bytes so `ä` and `錯誤` can be re-typed."""
    idx = token_bytes.index_for(tiny_tokenizer)
    for text in ("ä", "錯誤", "😋"):
        remaining = token_bytes.as_bytes(text)
        steps = 0
        while remaining and steps < 16:
            ids = idx.allowed(remaining)
            assert ids, f"no token can start re-typing {text!r}"
            remaining = healing.advance(remaining, token_text(idx, ids[0]))
            steps += 1
        assert not remaining


def token_text(idx: healing.VocabIndex, token_id: int) -> str:
    return idx._texts[idx._ids.index(token_id)]
