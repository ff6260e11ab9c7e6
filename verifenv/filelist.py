"""The file closure of a top module: which RTL files, include folders and defines it needs.

`resolve(inputs, top)` takes files, folders (read through their Bender.yml / FuseSoC .core / src_files.yml
when they have one, `manifest.py`) and `.f` file lists (with `+incdir+`, `+define+`, `-f`, `-v`, `-y`), maps
every module, interface and package declaration to its file, and walks instantiations and package references
(`import p::*`, `p::T`) from the top: packages come before their users, the top file last. `include`d
headers are found in the include folders, else searched for under the inputs. Called by the CLI before
interface extraction and by the bench for each top; the same list goes to pyslang, Icarus and Verilator.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ValidationError

log = logging.getLogger(__name__)

RTL_SUFFIXES = (".v", ".sv", ".vh", ".svh")
_MODULE_DECL = re.compile(r"^\s*(?:\(\*.*?\*\)\s*)*(?:module|macromodule)\s+(?:automatic\s+|static\s+)?([A-Za-z_]\w*)",
                          re.MULTILINE)
_UNIT_DECL = re.compile(r"^\s*(?:\(\*.*?\*\)\s*)*(package|interface)\s+(?:automatic\s+|static\s+)?([A-Za-z_]\w*)",
                        re.MULTILINE)
_PACKAGE_REF = re.compile(r"\b([A-Za-z_]\w*)\s*::")
_INCLUDE = re.compile(r'^\s*`include\s+"([^"]+)"', re.MULTILINE)



@dataclass(frozen=True)
class FileSet:
    top: str
    files: tuple[str, ...]  # the closure: packages, then dependencies before their users, top file last
    includes: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # instantiated modules or packages no given file declares (cells, IP, typos)
    packages: tuple[str, ...] = ()  # the packages in the closure, in compile order
    unresolved_includes: tuple[str, ...] = ()  # `include "x"` found in no include folder nor under the inputs

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
    roots: list[Path] = field(default_factory=list)  # folders searched for headers no include folder holds


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


def collect(inputs: Iterable[str | Path], use_manifests: bool = True) -> _Collected:
    """Files, include folders and defines from the inputs, in the order given (manifests keep theirs)."""
    from verifenv.manifest import read_manifest

    collected = _Collected([], [], [])
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise ValidationError(f"RTL input {str(path)!r} does not exist")
        if path.is_dir():
            found = read_manifest(path) if use_manifests else None
            if found is not None and found.files:
                collected.files.extend(found.files)
                collected.includes.extend(found.includes)
                collected.defines.extend(found.defines)
            else:
                collected.files.extend(_folder(path))
            collected.includes.append(str(path.resolve()))
            collected.roots.append(path.resolve())
        elif path.suffix.lower() == ".f":
            read_f(path, collected)
            collected.roots.append(path.resolve().parent)
        else:
            collected.files.append(path.resolve())
            collected.includes.append(str(path.resolve().parent))
    collected.files = list(dict.fromkeys(collected.files))
    return collected


def _source(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)  # `$display("a::b")` names no package
    return re.sub(r"//[^\n]*", " ", text)


def declarations(files: Iterable[Path], kinds: tuple[str, ...] = ("module", "interface")) -> dict[str, Path]:
    """name -> the file that declares it (first declaration wins, like most simulators' -y).

    `kinds` picks modules, interfaces and/or packages; the default is what can be instantiated."""
    table: dict[str, Path] = {}
    for path in files:
        if path.suffix.lower() in (".vh", ".svh"):
            continue  # headers are included, not compiled on their own
        text = _source(path)
        if "module" in kinds:
            for name in _MODULE_DECL.findall(text):
                table.setdefault(name, path)
        for kind, name in _UNIT_DECL.findall(text):
            if kind in kinds:
                table.setdefault(name, path)
    return table


def package_refs(path: Path) -> list[str]:
    """Packages a file names (`import p::*;`, `p::T`), in order of first use."""
    return list(dict.fromkeys(n for n in _PACKAGE_REF.findall(_source(path)) if n not in ("std", "$unit", "local")))


def _find_include(name: str, includes: list[str], roots: list[Path]) -> str | None:
    """The folder that makes `include "name"` resolve: an include folder, else one found under the inputs."""
    for folder in includes:
        if (Path(folder) / name).is_file():
            return folder
    for root in roots:
        # The inputs' parent too (a `src/` folder whose headers sit in `../include/`), never a filesystem root.
        for base in (root, root.parent) if root.parent != Path(root.anchor) else (root,):
            for hit in sorted(base.rglob(Path(name).name)):
                if hit.as_posix().endswith("/" + name.lstrip("./")):
                    return str(hit.resolve())[: -len(name.lstrip("./"))].rstrip("/")
    return None


def resolve(inputs: Iterable[str | Path], top: str) -> FileSet:
    """The file closure of `top` among the inputs."""
    from verifenv.interface import parse_modules

    collected = collect(inputs)
    table = declarations(collected.files)
    packages = declarations(collected.files, ("package",))
    if top not in table:
        known = ", ".join(sorted(table)[:20]) or "none"
        raise ValidationError(f"module {top!r} is not declared in the given RTL (modules found: {known})")
    order: list[Path] = []
    missing: list[str] = []
    used_packages: list[str] = []
    visiting: set[str] = set()
    visiting_packages: set[str] = set()
    parsed: dict[Path, dict[str, tuple[str, ...]]] = {}

    def instances(name: str) -> tuple[str, ...]:
        path = table[name]
        if path not in parsed:
            parsed[path] = {m.name: m.instances for m in parse_modules(path, "systemverilog")}
        return parsed[path].get(name, ())

    def visit_package(name: str) -> None:
        if name in visiting_packages:
            return
        visiting_packages.add(name)
        path = packages[name]
        for ref in package_refs(path):
            if ref in packages and ref != name:
                visit_package(ref)
        if path not in order:
            order.append(path)
        used_packages.append(name)

    def visit(name: str) -> None:
        if name in visiting:
            return
        visiting.add(name)
        for ref in package_refs(table[name]):
            if ref in packages:
                visit_package(ref)
        for child in instances(name):
            if child in table:
                visit(child)
            elif child not in missing:
                missing.append(child)
        if table[name] not in order:
            order.append(table[name])

    visit(top)
    includes = list(dict.fromkeys(collected.includes))
    unresolved: list[str] = []
    for path in [*order]:
        for name in _INCLUDE.findall(path.read_text(encoding="utf-8", errors="replace")):
            folder = _find_include(name, includes, collected.roots)
            if folder is None:
                unresolved.append(name)
            elif folder not in includes:
                includes.append(folder)
    return FileSet(top=top, files=tuple(str(p) for p in order), includes=tuple(includes),
                   defines=tuple(dict.fromkeys(collected.defines)), missing=tuple(missing),
                   packages=tuple(dict.fromkeys(used_packages)), unresolved_includes=tuple(dict.fromkeys(unresolved)))
