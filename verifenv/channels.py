"""Handshake channels read from port names: AXI-Stream, AXI4/AXI4-Lite, valid/ready, req/gnt/ack, push/full, pop/empty.

`infer(ports, skip)` groups ports into channels: a valid (or push, or !empty), its ready (or !full, or pop,
when there is one), and the payload fields that travel with them, with the side (`in`: the DUT receives,
`out`: the DUT sends). The generator uses them for legal stimulus (hold valid and payload until accepted,
back-pressure on outputs), for the X checks (a payload output only counts while its valid is high) and for
the transfer scoreboard. `apb(ports)` finds an APB completer's
ports, which the stimulus drives as an APB requester (setup, then access until pready). AXI4 / AXI4-Lite buses
and a Wishbone slave are found by role in buses.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from verifenv.syntax import Port

_DIR_SUFFIX = re.compile(r"_(i|o|in|out|ni|no)$", re.IGNORECASE)
_AXI_CHANNEL = r"(?P<ch>t|aw|w|b|ar|r)?"
_VALID = re.compile(rf"^(?P<pre>.*?)_?{_AXI_CHANNEL}(?P<role>valid|vld|req|stb)$", re.IGNORECASE)
_READY = re.compile(rf"^(?P<pre>.*?)_?{_AXI_CHANNEL}(?P<role>ready|rdy|gnt|ack)$", re.IGNORECASE)
_PUSH = re.compile(r"^(?P<pre>.*?)_?(?P<role>push|wr_en|wren|write|wr|we)$", re.IGNORECASE)
_POP = re.compile(r"^(?P<pre>.*?)_?(?P<role>pop|rd_en|rden|read|rd|re)$", re.IGNORECASE)
_FULL = re.compile(r"^(?P<pre>.*?)_?full$", re.IGNORECASE)
_EMPTY = re.compile(r"^(?P<pre>.*?)_?empty$", re.IGNORECASE)
# Payload words for a channel without a prefix (`valid_i`, `data_i`): anything else is control.
_PAYLOAD_WORD = re.compile(r"(^|_)(t?data|din|dout|wdata|rdata|payload|addr|id|dest|user|last|keep|strb|be|oup|inp|"
                           r"idx|tag|d|q)$", re.IGNORECASE)
# Control ports that share a channel's prefix but travel on their own (`src_clear_i` beside `src_valid_i`).
_CONTROL_WORD = re.compile(r"(^|_)(clear|clr|flush|rst|reset|en|enable|pending|busy|full|empty|idle|err|error|"
                           r"level|count|cnt|usage|fill|status|overflow|underflow|drop|pause|halt)(_|$)",
                           re.IGNORECASE)
_CANONICAL = {"din": "data", "dout": "data", "wdata": "data", "rdata": "data", "tdata": "data", "d": "data",
              "q": "data", "oup": "data", "inp": "data", "payload": "data", "tkeep": "keep", "tlast": "last",
              "tuser": "user", "tid": "id", "tdest": "dest", "tstrb": "strb"}
_PROTOCOL_NAMES = {"apb": re.compile(r"(^|_)p(sel|enable|ready|addr|wdata|rdata|write)(_[io])?$", re.IGNORECASE),
                   "wishbone": re.compile(r"(^|_)(cyc|stb|we|ack|adr|dat)(_[io])?$", re.IGNORECASE)}


@dataclass(frozen=True)
class Channel:
    name: str  # the shared prefix ("s_axis", "m_axi_aw", "in", "" for `valid_i`)
    side: str  # in: the DUT receives transfers | out: the DUT sends them
    protocol: str  # axi-stream | axi4 | valid/ready | req/ack | fifo
    valid: str  # the port that says a transfer is offered
    ready: str = ""  # the port that accepts it ("" when there is none: every valid cycle is a transfer)
    valid_low: bool = False  # valid is active low (an `empty` flag)
    ready_low: bool = False  # ready is active low (a `full` flag)
    payload: tuple[str, ...] = ()  # ports that carry the transfer
    fields: tuple[str, ...] = ()  # their canonical names ("data", "last", "user", ...), in payload order


def _base(name: str) -> str:
    return _DIR_SUFFIX.sub("", name)


def canonical(field: str) -> str:
    word = _base(field).lower()
    return _CANONICAL.get(word, word)


def _payload(prefix: str, ch: str, direction: str, ports: list[Port], taken: set[str]) -> list[tuple[str, str]]:
    """(port, canonical field) of the ports that travel with a channel."""
    out = []
    head = (prefix + "_" if prefix else "") + (ch or "")
    for port in ports:
        if port.name in taken or port.direction != direction:
            continue
        base = _base(port.name)
        if prefix or ch:
            if not base.lower().startswith(head.lower()) or len(base) <= len(head):
                continue
            rest = base[len(head):].lstrip("_")
            if ch == "t" and not rest:
                continue
        else:
            if not _PAYLOAD_WORD.search(base):
                continue
            rest = base
        if re.fullmatch(r"(valid|vld|ready|rdy|req|gnt|ack|stb)", rest, re.IGNORECASE) or _CONTROL_WORD.search(rest):
            continue
        out.append((port.name, canonical(("t" if ch == "t" else "") + rest) if ch == "t" else canonical(rest)))
    return out


def infer(ports: Iterable[Port], skip: Iterable[str] = ()) -> list[Channel]:
    """The handshake channels among the ports (clocks and resets in `skip`)."""
    ports = [p for p in ports if p.name not in set(skip)]
    by_name = {p.name: p for p in ports}
    channels: list[Channel] = []
    taken: set[str] = set()
    for port in ports:
        match = _VALID.match(_base(port.name))
        if match is None or port.name in taken or (port.width not in (None, 1)):
            continue
        pre, ch = match.group("pre"), match.group("ch") or ""
        if ch and not pre and match.group("role").lower() not in ("valid",):
            ch, pre = "", ""
        side = "in" if port.direction == "input" else "out"
        ready_dir = "output" if side == "in" else "input"
        ready = next((p.name for p in ports if p.direction == ready_dir and p.name not in taken
                      and (m := _READY.match(_base(p.name))) is not None
                      and m.group("pre") == pre and (m.group("ch") or "") == ch), "")
        role = match.group("role").lower()
        protocol = ("axi-stream" if ch == "t" else "axi4" if ch else
                    "req/ack" if role in ("req", "stb") else "valid/ready")
        taken |= {port.name, ready} - {""}
        payload = _payload(pre, ch, port.direction, ports, taken)
        taken |= {p for p, _f in payload}
        label = pre if ch == "t" and pre else pre + (("_" + ch) if ch and pre else ch)
        channels.append(Channel(label, side, protocol, port.name, ready,
                                payload=tuple(p for p, _f in payload), fields=tuple(f for _p, f in payload)))
    channels.extend(_fifo_channels(ports, taken, by_name))
    return channels


def _fifo_channels(ports: list[Port], taken: set[str], by_name: dict[str, Port]) -> list[Channel]:
    """push/!full into the DUT, !empty/pop out of it (a FIFO's own ports)."""
    out = []
    for port in ports:
        if port.name in taken or port.width not in (None, 1):
            continue
        base = _base(port.name)
        for pattern, flag, side in ((_PUSH, _FULL, "in"), (_POP, _EMPTY, "out")):
            match = pattern.match(base)
            if match is None or port.direction != "input":
                continue
            flag_port = next((p.name for p in ports if p.direction == "output" and p.name not in taken
                              and (m := flag.match(_base(p.name))) and m.group("pre") == match.group("pre")), "")
            if not flag_port:
                continue
            direction = "input" if side == "in" else "output"
            payload = [(p.name, canonical(_base(p.name)[len(match.group("pre")):].lstrip("_") or p.name))
                       for p in ports if p.direction == direction and p.name not in taken
                       and _base(p.name).lower().startswith(match.group("pre").lower())
                       and _PAYLOAD_WORD.search(_base(p.name))]
            taken |= {port.name, flag_port, *(p for p, _f in payload)}
            if side == "in":
                out.append(Channel(match.group("pre") or "push", "in", "fifo", port.name, flag_port, ready_low=True,
                                   payload=tuple(p for p, _f in payload), fields=tuple(f for _p, f in payload)))
            else:
                out.append(Channel(match.group("pre") or "pop", "out", "fifo", flag_port, port.name, valid_low=True,
                                   payload=tuple(p for p, _f in payload), fields=tuple(f for _p, f in payload)))
    return out


def qualifiers(channels: Iterable[Channel]) -> dict[str, str]:
    """Payload output -> its qualifier ("valid", or "!empty" for an active-low valid)."""
    out = {}
    for ch in channels:
        if ch.side != "out":
            continue
        for name in ch.payload:
            out[name] = ("!" if ch.valid_low else "") + ch.valid
    return out


def protocols_named(ports: Iterable[Port]) -> list[str]:
    """APB / Wishbone recognised by port names (reported in interface.json's `protocols`)."""
    names = [p.name for p in ports]
    return [proto for proto, pattern in _PROTOCOL_NAMES.items() if sum(bool(pattern.search(n)) for n in names) >= 3]


_APB_ROLE = re.compile(r"^(?P<pre>.*?)_?p(?P<role>sel[x0-9]*|enable|write|addr|wdata|strb|prot|ready|rdata|slverr)"
                       r"(_[io])?$", re.IGNORECASE)


def apb(ports: Iterable[Port]) -> dict[str, str] | None:
    """An APB completer's ports by role (psel, penable, pwrite, paddr, pwdata, pstrb, pprot in; pready, prdata,
    pslverr out), for the APB requester in the generated stimulus; None without psel, penable and paddr."""
    found: dict[str, str] = {}
    for port in ports:
        match = _APB_ROLE.match(_base(port.name))
        if match is None:
            continue
        role = "psel" if match.group("role").lower().startswith("sel") else "p" + match.group("role").lower()
        wanted = "output" if role in ("pready", "prdata", "pslverr") else "input"
        if port.direction == wanted and role not in found:
            found[role] = port.name
    return found if {"psel", "penable", "paddr"} <= found.keys() else None


def stream_pairs(channels: list[Channel]) -> tuple[list[Channel], Channel, tuple[str, ...]] | None:
    """The transfer scoreboard's view: input channels, the one output channel, and the fields they share
    (the output's fields that every input carries); None when the design is not stream-like."""
    outs = [c for c in channels if c.side == "out"]
    ins = [c for c in channels if c.side == "in" and c.payload]
    if len(outs) != 1 or not ins or not outs[0].payload:
        return None
    shared = tuple(f for f in outs[0].fields if all(f in c.fields for c in ins))
    if "data" not in shared and not shared:
        return None
    return ins, outs[0], shared
