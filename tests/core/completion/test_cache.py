"""The completion cache: typing the suggestion's first characters serves the rest."""

from __future__ import annotations

from core.completion.cache import CompletionCache


def test_typing_the_suggestion_serves_the_rest():
    cache = CompletionCache()
    prefix, suffix = "x = 1\ny = com", "\nprint(y)\n"
    cache.put("a.py", prefix, suffix, "pute(x) + 1")
    hit = cache.lookup("a.py", prefix + "pu", suffix)
    assert hit is not None and hit.text == "te(x) + 1" and hit.typed == "pu"
    assert cache.lookup("a.py", prefix, suffix).text == "pute(x) + 1"


def test_misses():
    cache = CompletionCache()
    prefix, suffix = "y = com", "\n"
    cache.put("a.py", prefix, suffix, "pute()")
    assert cache.lookup("a.py", prefix + "pz", suffix) is None        # typed something else
    assert cache.lookup("a.py", prefix + "pute()", suffix) is None    # typed all of it
    assert cache.lookup("a.py", prefix + "pu", suffix + "x") is None  # the text after the cursor changed
    assert cache.lookup("b.py", prefix + "pu", suffix) is None        # another document
    assert cache.lookup("a.py", "z" + prefix + "pu", suffix) is None  # the text before changed
    cache.put("a.py", prefix, suffix, "")
    assert len(cache) == 1


def test_capacity():
    cache = CompletionCache(capacity=2)
    for i in range(3):
        cache.put("a.py", f"p{i}", "", f"t{i}")
    assert len(cache) == 2 and cache.lookup("a.py", "p0", "") is None and cache.lookup("a.py", "p2", "").text == "t2"


def test_windowed_prefix_uses_document_offsets():
    """Editors send whole files; the prefix is a window of fixed size, so its length says nothing."""
    cache = CompletionCache()
    doc = "x" * 5000 + "\nvalue = comp"
    window = doc[-1000:]
    cache.put("a.py", window, "\n", "ute()", end=len(doc))
    typed_doc = doc + "ut"
    hit = cache.lookup("a.py", typed_doc[-1000:], "\n", end=len(typed_doc))
    assert hit is not None and hit.text == "e()"
    assert cache.lookup("a.py", (doc + "zz")[-1000:], "\n", end=len(doc) + 2) is None
