"""Languages as data: `languages.toml` maps language id, extensions, tree-sitter grammar, comment token and tags query.

The corpus builder, the language server and verif-env all call `detect`, `get` and `parse` from here.
A grammar that fails to load raises `GrammarError` naming the language; the other languages keep working.
"""

from __future__ import annotations

import functools
import importlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePath

from core.errors import GrammarError


@dataclass(frozen=True)
class Language:
    id: str
    name: str
    extensions: tuple[str, ...]
    grammar: str
    module: str
    function: str
    comment: str
    blocks: str
    block_nodes: tuple[str, ...]
    snippet: str
    tags: tuple[str, ...] = ()  # modules whose TAGS_QUERY define the symbol index's definitions
    definitions: str = ""  # our extra tags patterns


@functools.cache
def all_languages() -> tuple[Language, ...]:
    """Every language of the table, in table order."""
    raw = tomllib.loads(resources.files("core").joinpath("languages.toml").read_text(encoding="utf-8"))
    out = []
    for row in raw["language"]:
        out.append(
            Language(
                id=row["id"],
                name=row["name"],
                extensions=tuple(row["extensions"]),
                grammar=row["grammar"],
                module=row["module"],
                function=row["function"],
                comment=row["comment"],
                blocks=row["blocks"],
                block_nodes=tuple(row["block_nodes"]),
                snippet=row["snippet"],
                tags=tuple(row.get("tags", ())),
                definitions=row.get("definitions", ""),
            )
        )
    return tuple(out)


@functools.cache
def _by_extension() -> dict[str, Language]:
    table: dict[str, Language] = {}
    for lang in all_languages():
        for ext in lang.extensions:
            table.setdefault(ext, lang)
    return table


# Editors use a few other ids for the same languages.
_ALIASES = {"py": "python", "js": "javascript", "ts": "typescript", "tsx": "typescriptreact", "bash": "shellscript",
            "sh": "shellscript", "c++": "cpp", "cs": "csharp", "sv": "systemverilog", "golang": "go",
            "javascriptreact": "javascript"}


def get(language_id: str) -> Language | None:
    """The language with this id (LSP languageId or a common alias), or None."""
    key = _ALIASES.get(language_id.lower(), language_id.lower())
    return next((lang for lang in all_languages() if lang.id == key), None)


def detect(path: str | PurePath) -> Language | None:
    """The language of a file, from its extension; None when inhouse does not know it."""
    suffix = PurePath(path).suffix.lower()
    return _by_extension().get(suffix)


@functools.cache
def ts_language(language_id: str):
    """The `tree_sitter.Language` for a language id; raises GrammarError naming it when it cannot load."""
    import tree_sitter

    lang = get(language_id)
    if lang is None:
        raise GrammarError(f"unknown language {language_id!r}")
    try:
        module = importlib.import_module(lang.module)
        return tree_sitter.Language(getattr(module, lang.function)())
    except Exception as exc:  # any failure of a grammar wheel is reported by name; others keep working
        raise GrammarError(
            f"tree-sitter grammar for {lang.name} ({lang.grammar}) failed to load: {exc}"
        ) from exc


@functools.cache
def tags_query(language_id: str):
    """The `tree_sitter.Query` of the language's tags (its `tags` modules' TAGS_QUERY, then its `definitions`),
    or None when the table lists none; raises GrammarError naming the language when it cannot load."""
    import tree_sitter

    lang = get(language_id)
    if lang is None or not lang.tags:
        return None
    try:
        sources = [importlib.import_module(module).TAGS_QUERY for module in lang.tags]
        return tree_sitter.Query(ts_language(language_id), "\n".join([*sources, lang.definitions]))
    except GrammarError:
        raise
    except Exception as exc:  # a wheel without the file, or a query its grammar version rejects
        raise GrammarError(f"tags query for {lang.name} ({', '.join(lang.tags)}) failed to load: {exc}") from exc


def parser(language_id: str):
    """A fresh `tree_sitter.Parser` for the language (parsers are not thread-safe; languages are)."""
    import tree_sitter

    return tree_sitter.Parser(ts_language(language_id))


def parse(language_id: str, source: str | bytes):
    """Parse source text with the language's grammar; returns a `tree_sitter.Tree` (UTF-8 byte offsets)."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    return parser(language_id).parse(data)


def available() -> dict[str, str | None]:
    """For each language id: None if its grammar loads, else the error message (for `inhouse doctor`)."""
    report: dict[str, str | None] = {}
    for lang in all_languages():
        try:
            ts_language(lang.id)
            report[lang.id] = None
        except GrammarError as exc:
            report[lang.id] = str(exc)
    return report
