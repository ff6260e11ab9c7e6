"""Source lists read from the manifests hardware projects ship: Bender.yml, FuseSoC `.core` and `src_files.yml`.

`read_manifest(folder)` returns the files (in the manifest's order, which puts packages first), include folders
and defines of the first manifest found in a folder, or None. `filelist.collect` calls it for every folder
input; a folder without a manifest is read file by file instead.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ValidationError

log = logging.getLogger(__name__)

MANIFESTS = ("Bender.yml", "*.core", "src_files.yml")
# Bender targets taken as set: the RTL as simulated. Testbench, formal and synthesis-test groups stay out.
ACTIVE_TARGETS = frozenset({"rtl", "simulation", "verilator", "cocotb"})
_SKIP_GROUP = re.compile(r"(^|_)(tb|test|tests|sim_?only|formal|fpv|lint)($|_)", re.IGNORECASE)


@dataclass
class Manifest:
    path: Path
    files: list[Path] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    defines: list[str] = field(default_factory=list)


def find(folder: Path) -> Path | None:
    """The manifest that describes this folder (Bender first, then FuseSoC, then src_files.yml)."""
    for pattern in MANIFESTS:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def read_manifest(folder: Path) -> Manifest | None:
    path = find(folder)
    if path is None:
        return None
    try:
        import yaml
    except ImportError as exc:  # pyyaml comes with the verifenv extra
        raise ValidationError(f"{path}: reading it needs pyyaml (pip install 'inhouse[verifenv]')") from exc
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a mapping at the top, got {type(data).__name__}")
    out = Manifest(path)
    if path.name == "Bender.yml":
        _bender(data, folder, out)
    elif path.suffix == ".core":
        _fusesoc(data, folder, out)
    else:
        _src_files(data, folder, out)
    existing = []
    for f in dict.fromkeys(out.files):
        if f.exists():
            existing.append(f)
        else:
            log.warning("%s lists %s, which does not exist", path, f)
    out.files = existing
    out.includes = list(dict.fromkeys(out.includes))
    log.info("%s: %d file(s), %d include folder(s)", path, len(out.files), len(out.includes))
    return out


# ------------------------------------------------------------------------------------------------- Bender

def target_active(expr: str, active: frozenset[str] = ACTIVE_TARGETS) -> bool:
    """Evaluate a Bender target expression (`all(..)`, `any(..)`, `not(..)`, `*`, names) against `active`."""
    tokens = re.findall(r"[A-Za-z_][\w-]*|\*|[(),]", expr)
    pos = 0

    def parse() -> bool:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "*":
            return True
        if tok in ("all", "any", "not") and pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            args = []
            while tokens[pos] != ")":
                args.append(parse())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return {"all": all(args), "any": any(args), "not": not (args[0] if args else False)}[tok]
        return tok.lower() in active

    try:
        return parse() if tokens else True
    except IndexError:
        log.warning("cannot read Bender target %r; taking it as set", expr)
        return True


def _bender(data: dict, folder: Path, out: Manifest) -> None:
    out.includes.extend(str((folder / d).resolve()) for d in data.get("export_include_dirs", []) or [])

    def walk(items, target_ok: bool) -> None:
        for item in items or []:
            if isinstance(item, str):
                if target_ok:
                    out.files.append((folder / item).resolve())
            elif isinstance(item, dict):
                ok = target_ok and target_active(str(item.get("target", "*")))
                if ok:
                    out.includes.extend(str((folder / d).resolve()) for d in item.get("include_dirs", []) or [])
                    for name, value in (item.get("defines") or {}).items():
                        out.defines.append(name if value in (None, True) else f"{name}={value}")
                walk(item.get("files", []), ok)

    walk(data.get("sources", []), True)


# ------------------------------------------------------------------------------------------------ FuseSoC

def _fusesoc(data: dict, folder: Path, out: Manifest) -> None:
    filesets = data.get("filesets") or {}
    default = (data.get("targets") or {}).get("default") or {}
    names = [n for n in default.get("filesets", []) or [] if isinstance(n, str)] or list(filesets)
    for name in names:
        if _SKIP_GROUP.search(name) or name not in filesets:
            continue
        for entry in filesets[name].get("files", []) or []:
            if isinstance(entry, dict):
                (rel, attrs), = entry.items()
                attrs = attrs or {}
            else:
                rel, attrs = str(entry), {}
            if attrs.get("is_include_file"):
                inc = attrs.get("include_path")
                out.includes.append(str((folder / inc).resolve() if inc else (folder / rel).resolve().parent))
            elif Path(rel).suffix.lower() in (".v", ".sv"):
                out.files.append((folder / rel).resolve())


# ---------------------------------------------------------------------------------------------- src_files

def _src_files(data: dict, folder: Path, out: Manifest) -> None:
    for name, group in data.items():
        if not isinstance(group, dict) or _SKIP_GROUP.search(str(name)):
            continue
        out.includes.extend(str((folder / d).resolve()) for d in group.get("incdirs", []) or [])
        out.defines.extend(str(d) for d in group.get("defines", []) or [])
        out.files.extend((folder / f).resolve() for f in group.get("files", []) or [])
