from __future__ import annotations

import json

import pytest

from tests.verifenv.conftest import RTL
from verifenv import interface
from verifenv.interface import Clock, ModuleInterface, Reset


def ports(iface: ModuleInterface) -> list[tuple[str, str, int | None]]:
    return [(p.name, p.direction, p.width) for p in iface.ports]


def test_ansi_counter_with_attribute_and_async_active_low_reset():
    iface = interface.extract([RTL / "counter.v"], "counter")
    assert iface.name == "counter"  # the attribute `(* keep_hierarchy *)` comes before `module`
    assert ports(iface) == [("clk", "input", 1), ("rst_n", "input", 1), ("en", "input", 1), ("load", "input", 1),
                            ("din", "input", 8), ("count", "output", 8), ("wrap", "output", 1)]
    assert [(p.name, p.default, p.value, p.local) for p in iface.params] == [("WIDTH", "8", 8, False),
                                                                           ("INIT", "0", 0, False)]
    assert iface.port("count").type == "reg" and iface.port("count").packed == ("[WIDTH-1:0]",)
    assert iface.clocks == (Clock("clk", "posedge"),)
    assert iface.resets == (Reset("rst_n", active_low=True, asynchronous=True, by="use"),)
    assert iface.authority == "pyslang" and iface.disagreements == ()
    assert any("up counter" in c for c in iface.comments)


def test_non_ansi_verilog_1995_adder():
    iface = interface.extract([RTL / "adder95.v"], "adder95")
    assert ports(iface) == [("a", "input", 4), ("b", "input", 4), ("cin", "input", 1), ("sum", "output", 4),
                            ("cout", "output", 1)]
    assert [(p.name, p.value) for p in iface.params] == [("N", 4)]
    assert iface.clocks == () and iface.resets == ()


def test_systemverilog_fifo_with_clog2_and_assertions():
    iface = interface.extract([RTL / "fifo.sv"], "fifo")
    assert ports(iface) == [("clk", "input", 1), ("rst", "input", 1), ("push", "input", 1), ("wdata", "input", 8),
                            ("pop", "input", 1), ("rdata", "output", 8), ("full", "output", 1),
                            ("empty", "output", 1), ("level", "output", 5)]
    assert [(p.name, p.value, p.local, p.type) for p in iface.params] == [
        ("WIDTH", 8, False, "int"), ("DEPTH", 16, False, "int"), ("AW", 4, True, "int")]
    assert iface.port("level").packed == ("[AW:0]",)
    assert iface.clocks == (Clock("clk"),)
    # `if (!rst)` guards the assertions; the branch that assigns is `if (rst)`: active high, synchronous
    assert iface.resets == (Reset("rst", active_low=False, asynchronous=False, by="use"),)
    assert iface.assertions == ('assert (!(push && full)) else $error("push while full");',
                                'assert (!(pop && empty)) else $error("pop while empty");')
    assert iface.qualifiers == {"rdata": "!empty"}
    # tree-sitter-verilog cannot fold $clog2 in a port range: reported, pyslang decides
    assert "tree-sitter-verilog: port level width None vs 5" in iface.disagreements


def test_ifdef_in_port_list():
    iface = interface.extract([RTL / "ifdef_ports.v"], "ifdef_ports")
    assert [p.name for p in iface.ports] == ["clk", "reset", "dbg_state", "d", "q"]
    dbg = iface.port("dbg_state")
    assert dbg.ifdef == ("DEBUG",) and dbg.direction == "output" and dbg.width == 4
    assert not dbg.active() and dbg.active(["DEBUG"])
    assert [p.name for p in iface.outputs()] == ["q"]
    assert [p.name for p in iface.outputs(["DEBUG"])] == ["dbg_state", "q"]
    assert iface.resets == (Reset("reset", active_low=False, asynchronous=False, by="use"),)


def test_valid_ready_stream_register():
    iface = interface.extract([RTL / "stream_reg.v"], "stream_reg")
    assert ports(iface) == [("aclk", "input", 1), ("aresetn", "input", 1), ("s_data", "input", 16),
                            ("s_valid", "input", 1), ("s_ready", "output", 1), ("m_data", "output", 16),
                            ("m_valid", "output", 1), ("m_ready", "input", 1)]
    assert iface.clocks == (Clock("aclk"),)
    assert iface.resets == (Reset("aresetn", active_low=True, asynchronous=False, by="use"),)
    assert iface.qualifiers == {"m_data": "m_valid"}


def test_two_clock_design():
    iface = interface.extract([RTL / "two_clock.v"], "two_clock")
    assert iface.clocks == (Clock("clk_a"), Clock("clk_b"))
    assert iface.resets == (Reset("rst_n", active_low=True, asynchronous=True, by="use"),)
    assert ports(iface)[-2:] == [("cnt_a", "output", 4), ("sync_b", "output", 1)]


def test_instances_and_pyslang_over_a_hierarchy():
    iface = interface.extract([RTL / "stream_reg.v", RTL / "pipe_top.v"], "pipe_top")
    assert iface.instances == ("stream_reg",)
    assert iface.authority == "pyslang"
    assert ports(iface)[2] == ("in_data", "input", 8)


def test_pyslang_reports_what_tree_sitter_cannot_fold(tmp_path):
    src = tmp_path / "macro.sv"
    src.write_text("`define W 12\nmodule macro_w (input logic [`W-1:0] a, output logic [`W-1:0] y);\n"
                   "  assign y = a;\nendmodule\n")
    iface = interface.extract([src], "macro_w")
    assert iface.authority == "pyslang"
    assert [(p.name, p.width) for p in iface.ports] == [("a", 12), ("y", 12)]
    assert any("width unknown" in d and "pyslang 12" in d for d in iface.disagreements)


def test_json_round_trip(tmp_path):
    iface = interface.extract([RTL / "fifo.sv"], "fifo")
    path = tmp_path / "interface.json"
    path.write_text(json.dumps(iface.to_json()))
    assert interface.load(path) == iface


def test_unknown_top_names_the_module():
    from core.errors import ValidationError

    with pytest.raises(ValidationError, match="'nope'"):
        interface.extract([RTL / "counter.v"], "nope")


@pytest.mark.parametrize("grammar", ["systemverilog", "verilog"])
def test_both_grammars_read_the_verilog_fixtures(grammar):
    """The second opinion: tree-sitter-verilog agrees on the plain Verilog fixtures."""
    for name in ("counter", "adder95", "stream_reg", "two_clock"):
        (module,) = interface.parse_modules(RTL / f"{name}.v", grammar)
        assert module.name == name
        assert all(p.direction in ("input", "output") for p in module.ports)
        assert len(module.ports) >= 5


def test_pyslang_resolves_user_types(tmp_path):
    src = tmp_path / "structy.sv"
    src.write_text("typedef struct packed { logic [31:0] addr; logic [7:0] len; logic wr; } req_t;\n"
                   "module structy (input logic clk, input req_t req, output logic [40:0] flat);\n"
                   "  assign flat = req;\nendmodule\n")
    iface = interface.extract([src], "structy")
    req = iface.port("req")
    assert (req.type, req.width) == ("req_t", 41)
    assert req.resolved_type.startswith("struct packed") or "req_t" in req.resolved_type
    assert any("port req width unknown" in d for d in iface.disagreements)
