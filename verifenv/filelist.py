"""The file closure of a top module: which RTL files, include folders and defines it needs.

`resolve(inputs, top)` takes files, folders and `.f` file lists (with `+incdir+`, `+define+`, `-f`, `-v`,
`-y`), maps every module declaration to its file and walks instantiations from the top. Called by the CLI
before interface extraction and by the bench for each folder of RTL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ValidationError

log = logging.getLogger(__name__)

RTL_SUFFIXES = (".v", ".sv", ".vh", ".svh")
_MODULE_DECL = re.compile(r"^\s*(?:\(\*.*?\*\)\s*)*(?:module|macromodule)\s+(?:automatic\s+|static\s+)?([A-Za-z_]\w*)",
                          re.MULTILINE)


@dataclass(frozen=True)
class FileSet:
    top: str
    files: tuple[str, ...]  # the closure, dependencies before the files that use them, top file last
    includes: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # instantiated modules no given file declares (cells, IP, typos)

    def write_f(self, path: Path) -> None:
        """Write the closure as a `.f` file list (absolute paths), for simulators and licensed flows."""
        lines = [f"+incdir+{i}" for i in self.includes] + [f"+define+{d}" for d in self.defines]
        lines += [str(Path(f).resolve()) for f in self.files]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class _Collected:
    files: list[Path]
    includes: list[str]
    defines: list[str]


def read_f(path: Path, collected: _Collected, seen: set[Path] | None = None) -> None:
    """Read one `.f` file list (relative paths are relative to the list's own folder)."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    base = path.parent
    tokens: list[str] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = re.sub(r"(//|#).*$", "", raw).strip()
        tokens.extend(line.split())
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("+incdir+"):
            collected.includes.extend(str((base / d).resolve()) for d in tok[8:].split("+") if d)
        elif tok.startswith("+define+"):
            collected.defines.extend(d for d in tok[8:].split("+") if d)
        elif tok in ("-f", "-F") and i + 1 < len(tokens):
            read_f(base / tokens[i + 1], collected, seen)
            i += 1
        elif tok == "-v" and i + 1 < len(tokens):
            collected.files.append((base / tokens[i + 1]).resolve())
            i += 1
        elif tok == "-y" and i + 1 < len(tokens):
            collected.files.extend(_folder(base / tokens[i + 1]))
            i += 1
        elif tok.startswith(("+", "-")):
            log.debug("ignoring option %s in %s", tok, path)
        else:
            target = (base / tok).resolve()
            if not target.exists():
                raise ValidationError(f"{path}: listed file {tok!r} does not exist")
            collected.files.append(target)
        i += 1


def _folder(path: Path) -> list[Path]:
    return sorted(p.resolve() for p in path.rglob("*") if p.suffix.lower() in RTL_SUFFIXES and p.is_file())


def collect(inputs: Iterable[str | Path]) -> _Collected:
    collected = _Collected([], [], [])
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise ValidationError(f"RTL input {str(path)!r} does not exist")
        if path.is_dir():
            collected.files.extend(_folder(path))
            collected.includes.append(str(path.resolve()))
        elif path.suffix.lower() == ".f":
            read_f(path, collected)
        else:
            collected.files.append(path.resolve())
            collected.includes.append(str(path.resolve().parent))
    collected.files = list(dict.fromkeys(collected.files))
    return collected


def declarations(files: Iterable[Path]) -> dict[str, Path]:
    """module name -> the file that declares it (first declaration wins, like most simulators' -y)."""
    table: dict[str, Path] = {}
    for path in files:
        if path.suffix.lower() in (".vh", ".svh"):
            continue  # headers are included, not compiled on their own
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        for name in _MODULE_DECL.findall(text):
            table.setdefault(name, path)
    return table


def resolve(inputs: Iterable[str | Path], top: str) -> FileSet:
    """The file closure of `top` among the inputs."""
    from verifenv.interface import parse_modules

    collected = collect(inputs)
    table = declarations(collected.files)
    if top not in table:
        known = ", ".join(sorted(table)[:20]) or "none"
        raise ValidationError(f"module {top!r} is not declared in the given RTL (modules found: {known})")
    order: list[Path] = []
    missing: list[str] = []
    visiting: set[str] = set()
    parsed: dict[Path, dict[str, tuple[str, ...]]] = {}

    def instances(name: str) -> tuple[str, ...]:
        path = table[name]
        if path not in parsed:
            parsed[path] = {m.name: m.instances for m in parse_modules(path, "systemverilog")}
        return parsed[path].get(name, ())

    def visit(name: str) -> None:
        if name in visiting:
            return
        visiting.add(name)
        for child in instances(name):
            if child in table:
                visit(child)
            elif child not in missing:
                missing.append(child)
        if table[name] not in order:
            order.append(table[name])

    visit(top)
    return FileSet(top=top, files=tuple(str(p) for p in order), includes=tuple(dict.fromkeys(collected.includes)),
                   defines=tuple(dict.fromkeys(collected.defines)), missing=tuple(missing))
