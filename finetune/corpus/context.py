"""Repository-level context for training rows: which other files of the same repository go before a file.

Files it imports first (Python/JS/TS/Go/Rust/C-family import syntaxes resolved against the repository's
paths), then files of the same directory; only training files are offered, so no exam file leaks into
training through the context. Layout as in StarCoder2 / SantaCoder repository-level data (`core.fim`).
"""

from __future__ import annotations

import posixpath
import random
import re
from collections.abc import Mapping, Sequence

_PY_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import|import\s+([\w.]+))", re.MULTILINE)
_JS_IMPORT = re.compile(r"""(?:from\s+|require\(\s*|import\s*\(?\s*)['"](\.{1,2}/[^'"]+)['"]""")
_C_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
_RUST_MOD = re.compile(r"^\s*(?:pub\s+)?mod\s+(\w+)\s*;", re.MULTILINE)
_SV_INCLUDE = re.compile(r'^\s*`include\s+"([^"]+)"', re.MULTILINE)


def _python_candidates(path: str, text: str) -> list[str]:
    here = posixpath.dirname(path)
    out = []
    for m in _PY_IMPORT.finditer(text):
        name = m.group(1) or m.group(2) or ""
        dots = len(name) - len(name.lstrip("."))
        rel = name.lstrip(".").replace(".", "/")
        if dots:
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            stem = posixpath.join(base, rel) if rel else base
        else:
            stem = rel
        if stem:
            out += [f"{stem}.py", f"{stem}/__init__.py"]
            parent = posixpath.dirname(stem)
            if parent:
                out.append(f"{parent}.py")
    return out


def import_candidates(path: str, text: str, language_id: str) -> list[str]:
    """Repository paths the file's imports may refer to (unresolved names are simply not found)."""
    here = posixpath.dirname(path)
    if language_id == "python":
        return _python_candidates(path, text)
    out: list[str] = []
    if language_id in ("javascript", "typescript", "typescriptreact"):
        for m in _JS_IMPORT.finditer(text):
            stem = posixpath.normpath(posixpath.join(here, m.group(1)))
            out += [stem] + [stem + ext for ext in (".ts", ".tsx", ".js", ".jsx", ".mjs", "/index.ts", "/index.js")]
    elif language_id in ("c", "cpp", "csharp"):
        out += [posixpath.normpath(posixpath.join(here, m.group(1))) for m in _C_INCLUDE.finditer(text)]
    elif language_id == "rust":
        out += [posixpath.join(here, f"{m.group(1)}.rs") for m in _RUST_MOD.finditer(text)]
    elif language_id in ("verilog", "systemverilog"):
        out += [posixpath.normpath(posixpath.join(here, m.group(1))) for m in _SV_INCLUDE.finditer(text)]
    return out


def index_by_dir(paths: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """directory -> its files, sorted: built once per repository, shared by every file's lookup."""
    out: dict[str, list[str]] = {}
    for p in sorted(paths):
        out.setdefault(posixpath.dirname(p), []).append(p)
    return {d: tuple(ps) for d, ps in out.items()}


def related_files(path: str, text: str, language_id: str, by_dir: Mapping[str, Sequence[str]],
                  rng: random.Random, limit: int) -> list[str]:
    """Up to `limit` paths of the index related to `path`: its imports first, then same-directory files."""
    chosen: list[str] = []
    for cand in import_candidates(path, text, language_id):
        if cand in by_dir.get(posixpath.dirname(cand), ()) and cand != path and cand not in chosen:
            chosen.append(cand)
    here = posixpath.dirname(path)
    siblings = [p for p in by_dir.get(here, ()) if p != path and p not in chosen]
    rng.shuffle(siblings)
    chosen += siblings
    return chosen[:limit]
