from __future__ import annotations

import pytest

from core import languages
from core.errors import GrammarError

REQUIRED = ["python", "javascript", "typescript", "typescriptreact", "java", "c", "cpp", "csharp", "go", "rust",
            "shellscript", "verilog", "systemverilog", "vhdl"]


@pytest.mark.parametrize("lang_id", REQUIRED)
def test_every_listed_grammar_parses_a_real_snippet(lang_id):
    lang = languages.get(lang_id)
    assert lang is not None
    tree = languages.parse(lang_id, lang.snippet)
    assert tree.root_node.child_count > 0
    assert not tree.root_node.has_error, f"{lang_id}: {tree.root_node}"


@pytest.mark.parametrize("path,expected", [
    ("src/a.py", "python"), ("x.tsx", "typescriptreact"), ("x.ts", "typescript"), ("A.java", "java"),
    ("m.c", "c"), ("m.h", "c"), ("m.cpp", "cpp"), ("p.cs", "csharp"), ("main.go", "go"), ("lib.rs", "rust"),
    ("run.sh", "shellscript"), ("top.v", "verilog"), ("fifo.sv", "systemverilog"), ("e.vhd", "vhdl"),
    ("app.JS", "javascript"),
])
def test_detect(path, expected):
    assert languages.detect(path).id == expected


def test_unknown_extension_and_id():
    assert languages.detect("README.md") is None
    assert languages.get("cobol") is None
    assert languages.get("py").id == "python"


def test_broken_grammar_is_reported_by_name_and_others_keep_working(monkeypatch):
    import dataclasses

    broken = dataclasses.replace(languages.get("go"), module="tree_sitter_go_missing")
    table = tuple(broken if lang.id == "go" else lang for lang in languages.all_languages())
    monkeypatch.setattr(languages, "all_languages", lambda: table)
    languages.ts_language.cache_clear()
    try:
        with pytest.raises(GrammarError, match=r"Go \(tree-sitter-go\) failed to load"):
            languages.parse("go", "package main\n")
        assert languages.parse("python", "x = 1\n").root_node.type == "module"
        report = languages.available()
        assert report["go"] and report["python"] is None
    finally:
        languages.ts_language.cache_clear()


def test_every_language_has_comment_and_grammar_fields():
    for lang in languages.all_languages():
        assert lang.comment and lang.grammar.startswith("tree-sitter-") and lang.extensions
