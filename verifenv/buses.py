"""Memory-mapped buses read from port names: AXI4 / AXI4-Lite interfaces by prefix, a Wishbone slave by role.

`axi(ports)` groups `PREFIX_awaddr ... PREFIX_rready` into interfaces that cocotbext-axi can take as a bus
(`AxiBus.from_prefix` / `AxiLiteBus.from_prefix`: exact `PREFIX_signal` names, every required signal there);
the generated environment drives a slave DUT's with AxiMaster / AxiLiteMaster and answers a master DUT's with
AxiRam / AxiLiteRam (tb/buses.py). `wishbone(ports)` finds a Wishbone slave's cyc, stb, we, adr, dat, sel, ack,
stall, err, rty, which the stimulus drives as a Wishbone master (classic, or pipelined when there is a stall).
Called by interface.extract.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from verifenv.syntax import Port

# cocotbext-axi's required and optional signals per channel (axi_channels.py / axil_channels.py).
_AXI4 = {"aw": ("awid", "awaddr", "awlen", "awsize", "awburst", "awvalid", "awready"),
         "w": ("wdata", "wlast", "wvalid", "wready"), "b": ("bid", "bvalid", "bready"),
         "ar": ("arid", "araddr", "arlen", "arsize", "arburst", "arvalid", "arready"),
         "r": ("rid", "rdata", "rlast", "rvalid", "rready")}
_AXI4_OPTIONAL = ("awlock", "awcache", "awprot", "awqos", "awregion", "awuser", "wstrb", "wuser", "bresp", "buser",
                  "arlock", "arcache", "arprot", "arqos", "arregion", "aruser", "rresp", "ruser")
_LITE = {"aw": ("awaddr", "awvalid", "awready"), "w": ("wdata", "wvalid", "wready"), "b": ("bvalid", "bready"),
         "ar": ("araddr", "arvalid", "arready"), "r": ("rdata", "rvalid", "rready")}
_LITE_OPTIONAL = ("awprot", "wstrb", "bresp", "arprot", "rresp")
_MASTER_DRIVES = ("aw", "w", "ar")  # the channels whose valid the master drives (b and r flow back)


def _signals(kind_table: dict[str, tuple[str, ...]], part: str) -> tuple[str, ...]:
    return tuple(s for ch in (("aw", "w", "b") if part == "write" else ("ar", "r")) for s in kind_table[ch])


def axi(ports: Iterable[Port]) -> list[dict]:
    """AXI4 / AXI4-Lite interfaces: {prefix, kind (axi4 | axi4-lite), role (the DUT's: slave | master), write,
    read (which halves are there), ports (every port of the interface)}. A half counts when all of its required
    signals are there with the directions of one role; AXI4 wins over AXI4-Lite when both fit."""
    by_name = {p.name: p for p in ports}
    prefixes = sorted({m.group(1) for name in by_name if (m := re.match(r"^(.+)_(aw|ar)valid$", name))})
    found = []
    for prefix in prefixes:
        for kind, table, optional in (("axi4", _AXI4, _AXI4_OPTIONAL), ("axi4-lite", _LITE, _LITE_OPTIONAL)):
            valid = by_name.get(f"{prefix}_awvalid") or by_name.get(f"{prefix}_arvalid")
            if valid is None:
                continue
            role = "slave" if valid.direction == "input" else "master"
            halves = {part: all(_direction_fits(by_name.get(f"{prefix}_{s}"), s, role) for s in _signals(table, part))
                      for part in ("write", "read")}
            if not any(halves.values()):
                continue
            names = [f"{prefix}_{s}" for part, ok in halves.items() if ok
                     for s in (*_signals(table, part), *(o for o in optional if _in_half(o, part)))]
            found.append({"prefix": prefix, "kind": kind, "role": role, "write": halves["write"],
                          "read": halves["read"], "ports": [n for n in names if n in by_name]})
            break
    return found


def _in_half(signal: str, part: str) -> bool:
    return signal.startswith(("aw", "w", "b") if part == "write" else ("ar", "r"))


def _direction_fits(port: Port | None, signal: str, role: str) -> bool:
    """The master drives aw/w/ar and the ready of b/r; the slave the rest."""
    if port is None:
        return False
    channel = re.match(r"aw|ar|w|b|r", signal).group(0)  # type: ignore[union-attr]
    by_master = (channel in _MASTER_DRIVES) != signal.endswith("ready")
    return (port.direction == "input") == (by_master == (role == "slave"))


_WB_ROLE = re.compile(r"^(?:(?:i|o)_)?(?P<pre>.*?)_?(?P<role>cyc|stb|we|adr|addr|dat|data|sel|ack|stall|err|rty)"
                      r"(?:_(?:i|o))?$", re.IGNORECASE)


def wishbone(ports: Iterable[Port]) -> dict[str, str] | None:
    """A Wishbone slave's ports by role: cyc, stb, we, adr, dat_w (write data), sel in; ack, dat_r (read data),
    stall, err, rty out. None without cyc, stb and ack of one prefix."""
    by_prefix: dict[str, dict[str, str]] = {}
    for port in ports:
        match = _WB_ROLE.match(port.name)
        if match is None:
            continue
        role = {"addr": "adr", "data": "dat"}.get(match.group("role").lower(), match.group("role").lower())
        if role == "dat":
            role = "dat_w" if port.direction == "input" else "dat_r"
        wanted = "output" if role in ("ack", "dat_r", "stall", "err", "rty") else "input"
        found = by_prefix.setdefault(match.group("pre").lower(), {})
        if port.direction == wanted and role not in found:
            found[role] = port.name
    return next((found for found in by_prefix.values() if {"cyc", "stb", "ack"} <= found.keys()), None)
