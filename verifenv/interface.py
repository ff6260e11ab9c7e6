"""A module's interface read from RTL: name, parameters, ports, clocks, resets, instances, assertions.

`extract(paths, top)` parses every file with tree-sitter-systemverilog (the primary grammar), asks
tree-sitter-verilog for a second opinion on the port list, and lets pyslang (`elaborate.py`) overrule
widths and types where it elaborates the file set. The result is written as `interface.json` and read back
by the generator, the filler and the ladder. Only the structure comes from here; no model is involved.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import languages
from core.errors import ValidationError
from verifenv.constexpr import evaluate, range_width

log = logging.getLogger(__name__)

_IDENT_NODES = ("simple_identifier", "escaped_identifier")
_PORT_DECL_NODES = {"input_declaration": "input", "output_declaration": "output", "inout_declaration": "inout"}
_TYPE_WIDTHS = {"int": 32, "integer": 32, "byte": 8, "shortint": 16, "longint": 64, "time": 64}
_CLOCK_NAME = re.compile(r"^(a?clk|clock|clk_?i|a?clk_\w+|\w+_a?clk(_i)?|\w+_clock)$", re.IGNORECASE)
_RESET_NAME = re.compile(r"(^|_)(a?rst|a?reset|areset|reset)(n|_n|_ni|_b|b|_l)?(_i)?$|^a?resetn$", re.IGNORECASE)
_LOW_SUFFIX = re.compile(r"(n|_n|_ni|_b|b|_l)(_i)?$", re.IGNORECASE)
_DIRECTIVE = re.compile(r"`(ifdef|ifndef|elsif|else|endif)\b[ \t]*([A-Za-z_]\w*)?")
_QUALIFIER = re.compile(r"(^|_)(valid|vld|empty)(_o)?$", re.IGNORECASE)
_CONTROL = re.compile(r"(^|_)(valid|vld|ready|rdy|full|empty|level|count|cnt|busy|done|err|error)(_[a-z])?$",
                      re.IGNORECASE)


@dataclass(frozen=True)
class Param:
    name: str
    default: str
    value: int | None
    local: bool = False
    type: str = ""


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # input | output | inout
    type: str = ""  # wire, reg, logic, int, a user type name, or "" (implicit)
    packed: tuple[str, ...] = ()
    unpacked: tuple[str, ...] = ()
    width: int | None = None
    ifdef: tuple[str, ...] = ()  # conditions it sits under: "DEBUG", "!DEBUG"

    def active(self, defines: Iterable[str] = ()) -> bool:
        """Whether the port exists when the design is compiled with these macros defined."""
        names = set(defines)
        return all((c[1:] not in names) if c.startswith("!") else (c in names) for c in self.ifdef)


@dataclass(frozen=True)
class Clock:
    name: str
    edge: str = "posedge"


@dataclass(frozen=True)
class Reset:
    name: str
    active_low: bool
    asynchronous: bool


@dataclass(frozen=True)
class ModuleInterface:
    name: str
    file: str
    language: str
    params: tuple[Param, ...] = ()
    ports: tuple[Port, ...] = ()
    clocks: tuple[Clock, ...] = ()
    resets: tuple[Reset, ...] = ()
    instances: tuple[str, ...] = ()
    assertions: tuple[str, ...] = ()
    comments: tuple[str, ...] = ()
    qualifiers: dict[str, str] = field(default_factory=dict)  # data output -> qualifier ("valid" / "!empty")
    authority: str = "tree-sitter"
    disagreements: tuple[str, ...] = ()

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)

    def inputs(self, defines: Iterable[str] = ()) -> list[Port]:
        return [p for p in self.ports if p.direction == "input" and p.active(defines)]

    def outputs(self, defines: Iterable[str] = ()) -> list[Port]:
        return [p for p in self.ports if p.direction in ("output", "inout") and p.active(defines)]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModuleInterface:
        return cls(
            name=data["name"], file=data["file"], language=data["language"],
            params=tuple(Param(**p) for p in data.get("params", ())),
            ports=tuple(Port(**{**p, "packed": tuple(p.get("packed", ())), "unpacked": tuple(p.get("unpacked", ())),
                                "ifdef": tuple(p.get("ifdef", ()))}) for p in data.get("ports", ())),
            clocks=tuple(Clock(**c) for c in data.get("clocks", ())),
            resets=tuple(Reset(**r) for r in data.get("resets", ())),
            instances=tuple(data.get("instances", ())), assertions=tuple(data.get("assertions", ())),
            comments=tuple(data.get("comments", ())), qualifiers=dict(data.get("qualifiers", {})),
            authority=data.get("authority", "tree-sitter"), disagreements=tuple(data.get("disagreements", ())),
        )


def load(path: str | Path) -> ModuleInterface:
    return ModuleInterface.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------- tree walking

def _walk(node):
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(cur.children))


def _text(node, src: bytes) -> str:
    return src[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _own_nodes(module_node):
    """Descendants of a module declaration, not entering nested module declarations."""
    stack = list(reversed(module_node.children))
    while stack:
        cur = stack.pop()
        if cur.type == "module_declaration":
            continue
        yield cur
        stack.extend(reversed(cur.children))


def _first_ident(node, src: bytes) -> str | None:
    for sub in _walk(node):
        if sub.type in _IDENT_NODES:
            return _text(sub, src)
    return None


def _module_name(module_node, src: bytes) -> str | None:
    """The identifier after `module_keyword` (attributes may come before the keyword)."""
    for sub in _own_nodes(module_node):
        if sub.type == "module_keyword":
            sib = sub.next_named_sibling
            while sib is not None and sib.type in ("lifetime", "attribute_instance"):
                sib = sib.next_named_sibling
            return _first_ident(sib, src) if sib is not None else None
    return None


def _ifdef_map(src: str) -> list[tuple[int, tuple[str, ...]]]:
    """(offset, active condition stack) at every preprocessor directive, for ports under `ifdef`."""
    points: list[tuple[int, tuple[str, ...]]] = [(0, ())]
    stack: list[str] = []
    for match in _DIRECTIVE.finditer(src):
        word, name = match.group(1), match.group(2) or ""
        if word == "ifdef":
            stack.append(name)
        elif word == "ifndef":
            stack.append("!" + name)
        elif word in ("else", "elsif") and stack:
            top = stack.pop()
            stack.append(top[1:] if top.startswith("!") else "!" + top)
            if word == "elsif":
                stack[-1] = stack[-1] + "&" + name  # kept as text: rare in port lists
        elif word == "endif" and stack:
            stack.pop()
        points.append((match.end(), tuple(stack)))
    return points


def _conditions_at(points: list[tuple[int, tuple[str, ...]]], offset: int) -> tuple[str, ...]:
    current: tuple[str, ...] = ()
    for start, stack in points:
        if start > offset:
            break
        current = stack
    return current


def _dims(node, src: bytes, kind: str) -> tuple[str, ...]:
    return tuple(_text(n, src).replace(" ", "") for n in _walk(node) if n.type == kind)


def _type_text(header_text: str, direction: str) -> str:
    text = re.sub(r"\[[^\]]*\]", " ", header_text)
    text = re.sub(rf"^\s*{direction}\b", " ", text)
    return " ".join(text.split())


def _ports(module_node, src: bytes, conds) -> list[Port]:
    ports: list[Port] = []
    direction = "inout"
    order: list[str] = []
    for node in _own_nodes(module_node):
        if node.type == "ansi_port_declaration":
            name_node = None
            header_end = node.start_byte
            for child in node.children:
                if child.type in _IDENT_NODES or child.type == "port_identifier":
                    name_node = child
                    break
                header_end = child.end_byte
            if name_node is None:
                continue
            dir_node = next((n for n in _walk(node) if n.type == "port_direction"), None)
            if dir_node is not None:
                direction = _text(dir_node, src).strip()
            header = src[node.start_byte:header_end].decode("utf-8", "replace")
            unpacked = tuple(_text(n, src).replace(" ", "") for n in node.children
                             if n.start_byte >= name_node.end_byte and n.type in ("unpacked_dimension",
                                                                                   "variable_dimension"))
            packed = tuple(d for d in _dims(node, src, "packed_dimension") if d not in unpacked)
            ports.append(Port(name=_first_ident(name_node, src) or "", direction=direction,
                              type=_type_text(header, direction), packed=packed, unpacked=unpacked,
                              ifdef=conds(node.start_byte)))
        elif node.type in _PORT_DECL_NODES:
            kind = _PORT_DECL_NODES[node.type]
            names = [n for n in _walk(node) if n.type in ("list_of_port_identifiers", "list_of_variable_identifiers",
                                                         "list_of_variable_port_identifiers")]
            idents = [n for lst in names[:1] for n in lst.children if n.type in _IDENT_NODES + ("port_identifier",)]
            first = idents[0].start_byte if idents else node.end_byte
            header = src[node.start_byte:first].decode("utf-8", "replace")
            packed = tuple(_text(n, src).replace(" ", "") for n in _walk(node)
                           if n.type == "packed_dimension" and n.end_byte <= first)
            for ident in idents:
                ports.append(Port(name=_first_ident(ident, src) or "", direction=kind, type=_type_text(header, kind),
                                  packed=packed, ifdef=conds(node.start_byte)))
        elif node.type == "list_of_ports":
            order = [_first_ident(p, src) or "" for p in node.children if p.type == "port"]
    if order:
        rank = {name: i for i, name in enumerate(order)}
        ports.sort(key=lambda p: rank.get(p.name, len(rank)))
    return ports


def _params(module_node, src: bytes) -> list[Param]:
    out: list[Param] = []
    env: dict[str, int | None] = {}
    for node in _own_nodes(module_node):
        if node.type != "param_assignment":
            continue
        decl = node.parent
        while decl is not None and "parameter_declaration" not in decl.type and decl.type != "module_declaration":
            decl = decl.parent
        local = decl is not None and decl.type.startswith("local")
        type_node = None
        if decl is not None:
            type_node = next((c for c in decl.children if c.type.startswith("data_type")), None)
        name = _first_ident(node, src) or ""
        expr = next((c for c in node.children if c.type.startswith("constant_param_expression")
                     or c.type.startswith("constant_mintypmax") or c.type.endswith("expression")), None)
        default = _text(expr, src).strip() if expr is not None else ""
        value = evaluate(default, env)
        env[name] = value
        out.append(Param(name=name, default=default, value=value, local=local,
                         type=_text(type_node, src).strip() if type_node is not None else ""))
    return out


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)


def _edges(body: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for edge, name in re.findall(r"\b(posedge|negedge)\s+([A-Za-z_]\w*)", body):
        found.setdefault(name, set()).add(edge)
    return found


def _reset_polarity(name: str, body: str, edges: set[str]) -> bool:
    """True when the reset is active low: name suffix, then its edge, then the branch that assigns."""
    if _LOW_SUFFIX.search(name) and not name.lower().endswith(("reset", "rst")):
        return True
    if "negedge" in edges:
        return True
    if "posedge" in edges:
        return False
    for match in re.finditer(rf"\bif\s*\(\s*([!~]?)\s*{re.escape(name)}\s*(==\s*1'b?([01])\s*)?\)", body):
        branch = re.split(r"\belse\b", body[match.end():match.end() + 400], maxsplit=1)[0]
        if "<=" in branch or re.search(r"[^=!<>]=[^=]", branch):
            negated = bool(match.group(1)) or match.group(3) == "0"
            return negated
    return False


def _clocks_resets(ports: list[Port], body: str) -> tuple[list[Clock], list[Reset]]:
    edges = _edges(body)
    clocks: list[Clock] = []
    resets: list[Reset] = []
    clock_names = set()
    for port in ports:
        if port.direction != "input" or (port.width not in (None, 1)):
            continue
        port_edges = edges.get(port.name, set())
        if _RESET_NAME.search(port.name):
            asynchronous = bool(port_edges)
            resets.append(Reset(port.name, _reset_polarity(port.name, body, port_edges), asynchronous))
        elif port_edges or _CLOCK_NAME.match(port.name):
            clocks.append(Clock(port.name, "negedge" if port_edges == {"negedge"} else "posedge"))
            clock_names.add(port.name)
    return clocks, resets


def _assertions(body: str) -> list[str]:
    out = []
    for match in re.finditer(r"\b(assert|assume)\b\s*(property\b)?\s*\(", body):
        end = body.find(";", match.end())
        if end < 0:
            continue
        stmt = body[match.start():end + 1]
        if stmt.count("(") > stmt.count(")"):  # `;` inside a $error string: extend once
            end = body.find(";", end + 1)
            stmt = body[match.start():end + 1]
        out.append(" ".join(stmt.split()))
    return out


def _qualifiers(outputs: list[Port]) -> dict[str, str]:
    """Data outputs that are only defined while a `valid` is high (or an `empty` is low)."""
    quals = [p.name for p in outputs if _QUALIFIER.search(p.name)]
    if not quals:
        return {}
    data = [p.name for p in outputs if not _CONTROL.search(p.name) and p.name not in quals]
    out = {}
    for name in data:
        best = max(quals, key=lambda q: (len(_common_prefix(q, name)), -len(q)))
        if len(quals) > 1 and not _common_prefix(best, name):
            continue
        out[name] = ("!" + best) if re.search(r"empty", best, re.IGNORECASE) else best
    return out


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


@dataclass(frozen=True)
class ParsedModule:
    name: str
    file: str
    language: str
    params: tuple[Param, ...]
    ports: tuple[Port, ...]
    instances: tuple[str, ...]
    body: str  # comment-stripped source of the module
    comments: tuple[str, ...]
    errors: int


def language_of(path: str | Path) -> str:
    lang = languages.detect(path)
    return lang.id if lang is not None and lang.id in ("verilog", "systemverilog") else "systemverilog"


def parse_modules(path: str | Path, grammar: str = "systemverilog") -> list[ParsedModule]:
    """Every module declared in one file, read with one grammar."""
    src = Path(path).read_bytes()
    tree = languages.parse(grammar, src)
    text = src.decode("utf-8", "replace")
    points = _ifdef_map(text)
    byte_to_char = len(src) == len(text)

    def conds(offset: int) -> tuple[str, ...]:
        return _conditions_at(points, offset if byte_to_char else len(src[:offset].decode("utf-8", "replace")))

    out = []
    for node in _walk(tree.root_node):
        if node.type != "module_declaration":
            continue
        name = _module_name(node, src)
        if not name:
            continue
        params = _params(node, src)
        env = {p.name: p.value for p in params}
        ports = [dataclasses.replace(p, width=_port_width(p, env)) for p in _ports(node, src, conds)]
        instances = []
        for sub in _own_nodes(node):
            if sub.type == "module_instantiation":
                ident = _first_ident(sub, src)
                if ident:
                    instances.append(ident)
        comments = tuple(_text(c, src).strip() for c in _own_nodes(node) if "comment" in c.type)
        errors = sum(1 for sub in _walk(node) if sub.type == "ERROR" or sub.is_missing)
        out.append(ParsedModule(name, str(path), language_of(path), tuple(params), tuple(ports),
                                tuple(dict.fromkeys(instances)), _strip_comments(_text(node, src)), comments, errors))
    return out


def _port_width(port: Port, env: Mapping[str, int | None]) -> int | None:
    if port.unpacked:
        return None
    base = 1
    for word in port.type.split():
        if word in _TYPE_WIDTHS:
            base = _TYPE_WIDTHS[word]
        elif word not in ("wire", "reg", "logic", "bit", "signed", "unsigned", "var", "tri", "wand", "wor"):
            return None  # a user type: only pyslang knows its width
    width = range_width(port.packed, env)
    return None if width is None else width * base


def _leading_comments(path: str, name: str) -> tuple[str, ...]:
    """Comment lines directly above `module NAME` (tree-sitter puts them outside the module node)."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    idx = next((i for i, line in enumerate(lines) if re.search(rf"\bmodule\s+{re.escape(name)}\b", line)), None)
    out: list[str] = []
    i = (idx or 0) - 1
    while idx is not None and i >= 0 and (lines[i].strip().startswith(("//", "(*")) or not lines[i].strip()):
        if lines[i].strip().startswith("//"):
            out.insert(0, lines[i].strip())
        i -= 1
    return tuple(out)


def extract(files: Iterable[str | Path], top: str, defines: Iterable[str] = ()) -> ModuleInterface:
    """The interface of module `top` among `files` (its file closure), pyslang overruling where it elaborates."""
    from verifenv import elaborate

    files = [str(f) for f in files]
    primary = None
    for path in files:
        for module in parse_modules(path, "systemverilog"):
            if module.name == top:
                primary = module
    if primary is None:
        raise ValidationError(f"module {top!r} is not declared in {', '.join(files) or 'the given files'}")
    disagreements: list[str] = []
    if primary.errors:
        disagreements.append(f"tree-sitter-systemverilog: {primary.errors} parse error node(s) in {top}")
    second = next((m for m in parse_modules(primary.file, "verilog") if m.name == top), None)
    if second is None:
        disagreements.append(f"tree-sitter-verilog: module {top} not found")
    else:
        disagreements.extend(_compare("tree-sitter-verilog", primary.ports, second.ports))
    ports = list(primary.ports)
    params = list(primary.params)
    authority = "tree-sitter"
    elab = elaborate.elaborate(files, top, defines)
    if elab.ok:
        authority = "pyslang"
        disagreements.extend(elab.disagree_with(ports, params))
        ports = elab.merge_ports(ports)
        params = elab.merge_params(params)
    elif elab.error:
        disagreements.append(f"pyslang: {elab.error}")
    clocks, resets = _clocks_resets(ports, primary.body)
    outputs = [p for p in ports if p.direction != "input"]
    return ModuleInterface(
        name=top, file=primary.file, language=primary.language, params=tuple(params), ports=tuple(ports),
        clocks=tuple(clocks), resets=tuple(resets), instances=primary.instances,
        assertions=tuple(_assertions(primary.body)),
        comments=_leading_comments(primary.file, top) + primary.comments,
        qualifiers=_qualifiers(outputs), authority=authority, disagreements=tuple(disagreements),
    )


def _compare(who: str, ours: Iterable[Port], theirs: Iterable[Port]) -> list[str]:
    mine = {p.name: p for p in ours}
    other = {p.name: p for p in theirs}
    out = []
    for name in mine.keys() - other.keys():
        out.append(f"{who}: port {name} missing")
    for name in other.keys() - mine.keys():
        out.append(f"{who}: extra port {name}")
    for name in mine.keys() & other.keys():
        if mine[name].direction != other[name].direction:
            out.append(f"{who}: port {name} direction {other[name].direction} vs {mine[name].direction}")
        elif mine[name].width != other[name].width:
            out.append(f"{who}: port {name} width {other[name].width} vs {mine[name].width}")
    return sorted(out)
