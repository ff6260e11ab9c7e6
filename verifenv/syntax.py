"""Module declarations read from RTL text with a tree-sitter grammar (either of the two Verilog grammars).

`parse_modules(path, grammar)` returns every module of a file with its parameters (defaults folded), ports
(direction, type, packed/unpacked dimensions, width, the `ifdef` conditions they sit under) and instances.
`interface.extract` builds the interface from these; `filelist` and the bench use the instance lists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core import languages
from verifenv.constexpr import evaluate, range_width

_IDENT_NODES = ("simple_identifier", "escaped_identifier")
_PORT_DECL_NODES = {"input_declaration": "input", "output_declaration": "output", "inout_declaration": "inout"}
_TYPE_WIDTHS = {"int": 32, "integer": 32, "byte": 8, "shortint": 16, "longint": 64, "time": 64}
_DIRECTIVE = re.compile(r"`(ifdef|ifndef|elsif|else|endif)\b[ \t]*([A-Za-z_]\w*)?")


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
    resolved_type: str = ""  # the elaborated type from pyslang (e.g. "logic[7:0]"), when it elaborates

    def active(self, defines: Iterable[str] = ()) -> bool:
        """Whether the port exists when the design is compiled with these macros defined."""
        names = set(defines)
        return all((c[1:] not in names) if c.startswith("!") else (c in names) for c in self.ifdef)



def walk(node):
    """Every node under `node`, depth first in source order."""
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
    for sub in walk(node):
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
    return tuple(_text(n, src).replace(" ", "") for n in walk(node) if n.type == kind)


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
            dir_node = next((n for n in walk(node) if n.type == "port_direction"), None)
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
            names = [n for n in walk(node) if n.type in ("list_of_port_identifiers", "list_of_variable_identifiers",
                                                         "list_of_variable_port_identifiers")]
            idents = [n for lst in names[:1] for n in lst.children if n.type in _IDENT_NODES + ("port_identifier",)]
            first = idents[0].start_byte if idents else node.end_byte
            header = src[node.start_byte:first].decode("utf-8", "replace")
            packed = tuple(_text(n, src).replace(" ", "") for n in walk(node)
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


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)



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
    for node in walk(tree.root_node):
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
        errors = sum(1 for sub in walk(node) if sub.type == "ERROR" or sub.is_missing)
        out.append(ParsedModule(name, str(path), language_of(path), tuple(params), tuple(ports),
                                tuple(dict.fromkeys(instances)), strip_comments(_text(node, src)), comments, errors))
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


