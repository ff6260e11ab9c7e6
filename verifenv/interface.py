"""A module's interface read from RTL: name, parameters, ports, clocks, resets, channels, instances, assertions.

`extract(paths, top)` parses every file with tree-sitter-systemverilog (the primary grammar), asks
tree-sitter-verilog for a second opinion on the port list, and lets pyslang (`elaborate.py`) overrule
widths and types where it elaborates the file set. Resets are inferred from use (`resets.py`, on the
macro-expanded text), handshake channels from names (`channels.py`), AXI4 / AXI4-Lite and Wishbone buses by
role (`buses.py`), assertions in statement and macro form (`assertions.py`). The result is written as
`interface.json` and read back by the generator, the filler and the ladder. Only the structure comes from
here; no model is involved.
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

from core.errors import ValidationError
from verifenv import assertions as dut_assertions
from verifenv import buses
from verifenv import channels as handshakes
from verifenv import resets as reset_use
from verifenv.channels import Channel
from verifenv.syntax import Param, ParsedModule, Port, language_of, parse_modules, strip_comments

__all__ = ["Clock", "ModuleInterface", "Param", "ParsedModule", "Port", "Reset", "extract", "language_of",
           "load", "parse_modules"]

log = logging.getLogger(__name__)

_CLOCK_NAME = re.compile(r"^(a?clk|clock|clk_?i|a?clk_\w+|\w+_a?clk(_i)?|\w+_clock)$", re.IGNORECASE)
_RESET_NAME = re.compile(r"(^|_)(a?rst|a?reset|areset|reset|srst)(_[a-z0-9]+?)?(n|_n|_ni|_b|b|_l)?(_i)?$|^a?resetn$",
                         re.IGNORECASE)
_LOW_SUFFIX = re.compile(r"(n|_n|_ni|_b|b|_l)(_i)?$", re.IGNORECASE)
_QUALIFIER = re.compile(r"(^|_)(valid|vld|empty)(_o)?$", re.IGNORECASE)
_CONTROL = re.compile(r"(^|_)(valid|vld|ready|rdy|full|empty|level|count|cnt|busy|done|err|error)(_[a-z])?$",
                      re.IGNORECASE)


@dataclass(frozen=True)
class Clock:
    name: str
    edge: str = "posedge"


@dataclass(frozen=True)
class Reset:
    name: str
    active_low: bool
    asynchronous: bool
    by: str = "name"  # use: it forces registers to constants (evidence in ModuleInterface.reset_evidence) | name


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
    channels: tuple[Channel, ...] = ()  # handshake channels (valid/ready and kin), see channels.py
    reset_evidence: dict[str, dict] = field(default_factory=dict)  # input -> registers it forces, polarity, async
    protocols: tuple[str, ...] = ()  # protocols recognised by name (apb, wishbone)
    apb: dict[str, str] = field(default_factory=dict)  # APB role -> port (psel, penable, ..., pready, prdata)
    axi: tuple[dict, ...] = ()  # AXI4 / AXI4-Lite interfaces for cocotbext-axi, see buses.py
    wishbone: dict[str, str] = field(default_factory=dict)  # Wishbone slave role -> port (cyc, stb, ..., ack)
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
            channels=tuple(Channel(**{**c, "payload": tuple(c.get("payload", ())),
                                      "fields": tuple(c.get("fields", ()))})
                           for c in data.get("channels", ())),
            reset_evidence=dict(data.get("reset_evidence", {})), protocols=tuple(data.get("protocols", ())),
            apb=dict(data.get("apb", {})), axi=tuple(dict(a) for a in data.get("axi", ())),
            wishbone=dict(data.get("wishbone", {})),
            authority=data.get("authority", "tree-sitter"), disagreements=tuple(data.get("disagreements", ())),
        )


def load(path: str | Path) -> ModuleInterface:
    return ModuleInterface.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------- tree walking

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


def _clocks_resets(ports: list[Port], body: str, evidence: Mapping[str, reset_use.ResetEvidence]
                   ) -> tuple[list[Clock], list[Reset]]:
    """Resets by use first (the evidence decides polarity and whether it is asynchronous), then by name."""
    edges = _edges(body)
    clocks: list[Clock] = []
    resets: list[Reset] = []
    for port in ports:
        if port.direction != "input" or (port.width not in (None, 1)):
            continue
        port_edges = edges.get(port.name, set())
        used = evidence.get(port.name)
        if used is not None:
            resets.append(Reset(port.name, used.active_low, used.asynchronous, by="use"))
        elif _RESET_NAME.search(port.name):
            asynchronous = bool(port_edges)
            resets.append(Reset(port.name, _reset_polarity(port.name, body, port_edges), asynchronous))
        elif port_edges or _CLOCK_NAME.match(port.name):
            clocks.append(Clock(port.name, "negedge" if port_edges == {"negedge"} else "posedge"))
    # Names break ties: with several resets, the named ones come first (they are held longest, released last).
    resets.sort(key=lambda r: (not _RESET_NAME.search(r.name), r.by != "use"))
    return clocks, resets


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


def extract(files: Iterable[str | Path], top: str, defines: Iterable[str] = (),
            includes: Iterable[str] = ()) -> ModuleInterface:
    """The interface of module `top` among `files` (its file closure), pyslang overruling where it elaborates."""
    from verifenv import elaborate

    names = [str(f) for f in files]
    primary = None
    for path in names:
        for module in parse_modules(path, "systemverilog"):
            if module.name == top:
                primary = module
    if primary is None:
        raise ValidationError(f"module {top!r} is not declared in {', '.join(names) or 'the given files'}")
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
    defines, includes = tuple(defines), tuple(includes)
    elab = elaborate.elaborate(names, top, defines, includes)
    if elab.ok:
        authority = "pyslang"
        disagreements.extend(elab.disagree_with(ports, params))
        ports = elab.merge_ports(ports)
        params = elab.merge_params(params)
    elif elab.error:
        disagreements.append(f"pyslang: {elab.error}")
    expanded = elaborate.expand_macros(primary.file, includes, defines)
    text = _module_text(expanded, top) if expanded else None
    body = strip_comments(text) if text else primary.body
    inputs = [p.name for p in ports if p.direction == "input" and p.width in (None, 1)]
    evidence = reset_use.infer(body, inputs, [p.name for p in params])
    if body is not primary.body:  # the raw text too: a macro pyslang could not expand hides nothing then
        for name, ev in reset_use.infer(primary.body, inputs, [p.name for p in params]).items():
            evidence.setdefault(name, ev)
    clocks, resets = _clocks_resets(ports, body, evidence)
    evidence = {r.name: evidence[r.name] for r in resets if r.name in evidence}
    special = {c.name for c in clocks} | {r.name for r in resets}
    free = [p for p in ports if p.name not in special]
    wishbone = buses.wishbone(free) or {}
    # A Wishbone stb/ack is no valid/ready pair (a pipelined slave acknowledges after stb fell): its own driver.
    channels = [c for c in handshakes.infer(ports, special) if not {c.valid, c.ready} & set(wishbone.values())]
    outputs = [p for p in ports if p.direction != "input"]
    qualifiers = {**_qualifiers(outputs), **handshakes.qualifiers(channels)}
    apb = handshakes.apb(free) or {}
    if "prdata" in apb and "pready" in apb:
        qualifiers[apb["prdata"]] = apb["pready"]  # read data means something only while the completer is ready
    if "dat_r" in wishbone:
        qualifiers[wishbone["dat_r"]] = wishbone["ack"]  # read data only counts on the acknowledge
    found = dut_assertions.find(primary.body, body)
    return ModuleInterface(
        name=top, file=primary.file, language=primary.language, params=tuple(params), ports=tuple(ports),
        clocks=tuple(clocks), resets=tuple(resets), instances=primary.instances, assertions=tuple(found),
        comments=_leading_comments(primary.file, top) + primary.comments,
        qualifiers=qualifiers, authority=authority, disagreements=tuple(disagreements), channels=tuple(channels),
        reset_evidence={name: ev.to_json() for name, ev in evidence.items()},
        protocols=tuple(handshakes.protocols_named(ports)), apb=apb, axi=tuple(buses.axi(free)),
        wishbone=wishbone,
    )


def _module_text(text: str, top: str) -> str | None:
    """`module top ... endmodule` out of a whole (macro-expanded) file."""
    match = re.search(rf"\bmodule\s+(?:automatic\s+|static\s+)?{re.escape(top)}\b", text)
    if match is None:
        return None
    end = re.compile(r"\bendmodule\b").search(text, match.end())
    return text[match.start():end.end() if end else len(text)]


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
