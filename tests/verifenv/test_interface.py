from __future__ import annotations

import json

import pytest

from tests.verifenv.conftest import PUBLIC, RTL
from verifenv import filelist, interface
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


def test_sync_clear_is_a_reset_by_use_with_its_evidence():
    iface = interface.extract([RTL / "acc_clear.v"], "acc_clear")
    assert iface.resets == (Reset("clear", active_low=False, asynchronous=False, by="use"),)
    assert iface.reset_evidence["clear"]["forces"] == ["carry", "sum"]
    assert [p.name for p in iface.inputs() if p.name not in ("clk", "clear")] == ["en", "din"]
    saved = interface.ModuleInterface.from_json(iface.to_json())
    assert saved.reset_evidence == iface.reset_evidence and saved.resets == iface.resets


def test_resets_by_use_in_either_polarity_and_names_with_infixes(tmp_path):
    (tmp_path / "two_rst.v").write_text(
        "module two_rst(input clk, input rst_tx_ni, input rst_rx_ni, input start, input [3:0] d,\n"
        "               output reg [3:0] tx, output reg [3:0] rx, output reg busy);\n"
        "  always @(posedge clk or negedge rst_tx_ni) if (!rst_tx_ni) tx <= 4'h0; else tx <= d;\n"
        "  always @(posedge clk) begin\n    if (rst_rx_ni == 1'b0) begin rx <= '0; end\n"
        "    else begin\n      rx <= tx;\n      if (d[0]) busy <= 1'b0;\n      if (start) busy <= 1'b1;\n"
        "    end\n  end\nendmodule\n")
    iface = interface.extract([tmp_path / "two_rst.v"], "two_rst")
    assert set(iface.resets) == {Reset("rst_tx_ni", True, True, "use"), Reset("rst_rx_ni", True, False, "use")}
    assert "start" not in iface.reset_evidence  # a set deep inside the logic is no reset


def test_async_reset_found_through_register_macros(tmp_path):
    (tmp_path / "ff.svh").write_text(
        "`define FFARN(q, d, rv, clk, rst_n) always_ff @(posedge clk or negedge rst_n) "
        "if (!rst_n) q <= rv; else q <= d;\n")
    (tmp_path / "macro_ff.sv").write_text(
        '`include "ff.svh"\nmodule macro_ff(input logic clk_i, input logic arst_ni, input logic [3:0] d_i,\n'
        "                output logic [3:0] q_o);\n  `FFARN(q_o, d_i, '0, clk_i, arst_ni)\nendmodule\n")
    fs = filelist.resolve([tmp_path], "macro_ff")
    iface = interface.extract(fs.files, "macro_ff", fs.defines, fs.includes)
    assert iface.resets == (Reset("arst_ni", active_low=True, asynchronous=True, by="use"),)
    assert iface.reset_evidence["arst_ni"]["forces"] == ["q_o"]


def test_axi_stream_channels_qualify_the_payload():
    iface = interface.extract([RTL / "axis_fifo_x.v"], "axis_fifo_x")
    s_axis, m_axis = iface.channels
    assert (s_axis.name, s_axis.side, s_axis.protocol, s_axis.valid, s_axis.ready) == \
        ("s_axis", "in", "axi-stream", "s_axis_tvalid", "s_axis_tready")
    assert s_axis.fields == ("data", "last", "user") and m_axis.side == "out"
    assert iface.qualifiers == {f"m_axis_t{f}": "m_axis_tvalid" for f in ("data", "last", "user")}
    assert iface.resets == (Reset("rst", active_low=False, asynchronous=False, by="use"),)  # reset at block end


def test_channels_by_naming_convention():
    from verifenv import channels
    from verifenv.syntax import Port

    def port(name, direction, width=1):
        return Port(name=name, direction=direction, width=width)

    common = [port("valid_i", "input"), port("ready_o", "output"), port("data_i", "input", 8),
              port("flush_i", "input"), port("valid_o", "output"), port("ready_i", "input"),
              port("data_o", "output", 8)]
    found = channels.infer(common)
    assert [(c.side, c.valid, c.ready, c.payload) for c in found] == [
        ("in", "valid_i", "ready_o", ("data_i",)), ("out", "valid_o", "ready_i", ("data_o",))]
    assert channels.stream_pairs(found)[2] == ("data",)
    axil = [port("s_axil_awvalid", "input"), port("s_axil_awready", "output"), port("s_axil_awaddr", "input", 8),
            port("s_axil_wvalid", "input"), port("s_axil_wready", "output"), port("s_axil_wdata", "input", 32),
            port("s_axil_bvalid", "output"), port("s_axil_bready", "input"), port("s_axil_bresp", "output", 2)]
    found = channels.infer(axil)
    assert [(c.name, c.protocol, c.payload) for c in found] == [
        ("s_axil_aw", "axi4", ("s_axil_awaddr",)), ("s_axil_w", "axi4", ("s_axil_wdata",)),
        ("s_axil_b", "axi4", ("s_axil_bresp",))]
    fifo = [port("wr_en", "input"), port("din", "input", 8), port("full", "output"), port("rd_en", "input"),
            port("dout", "output", 8), port("empty", "output")]
    found = channels.infer(fifo)
    assert [(c.protocol, c.valid, c.ready, c.valid_low, c.ready_low) for c in found] == [
        ("fifo", "wr_en", "full", False, True), ("fifo", "empty", "rd_en", True, False)]
    assert channels.qualifiers(found) == {"dout": "!empty"}
    apb = [port(n, "input") for n in ("psel", "penable", "pwrite", "paddr")] + [port("pready", "output")]
    assert channels.protocols_named(apb) == ["apb"]


def test_assertion_macros_are_found_and_become_constraints():
    from verifenv import generate

    fs = filelist.resolve([RTL / "svpkg"], "fx_fifo")
    iface = interface.extract(fs.files, "fx_fifo", fs.defines, fs.includes)
    assert iface.authority == "pyslang"  # the package and the header were given to it
    assert iface.port("data_i").width == 8
    assert [a.split(" (")[0] for a in iface.assertions] == ["assert property", "assume property"]
    lines = "".join(generate.derived_constraints(iface))
    assert "if outputs.get('full_o'):" in lines and "inputs['put_i'] = 0" in lines
    assert "if outputs.get('empty_o'):" in lines and "inputs['take_i'] = 0" in lines


def test_macro_calls_are_read_when_they_do_not_expand(tmp_path):
    from verifenv import assertions

    raw = ("`ASSERT(no_pop_empty, empty_o |-> ~pop_i, clk_i, !rst_ni)\n"
           "`ASSERT_NEVER(no_push_full, push_i && full_o)\n`ASSUME(stable, valid_i |=> valid_i)\n"
           "`ASSERT(no_valid_during_clear, clear_i |-> !valid_i, clk_i, !rst_ni)\n")
    found = assertions.find(raw)
    assert found[0].startswith("assert property (empty_o |-> ~pop_i);")
    lines = "".join(assertions.constraints(found, {"pop_i", "push_i", "valid_i", "clear_i"}, {"empty_o", "full_o"}))
    assert "inputs['pop_i'] = 0" in lines and "inputs['push_i'] = 0" in lines
    assert "if inputs.get('clear_i'):" in lines and lines.count("valid_i") == 2  # only the clear rule; |=> is left


def test_axi_interfaces_by_prefix_for_cocotbext_axi():
    """AXI4-Lite and AXI4 slaves (ours and verilog-axi's), a master's ports, and a half-interface."""
    from verifenv import buses
    from verifenv.syntax import Port

    axil = interface.extract([RTL / "axil_regs.v"], "axil_regs")
    assert [(b["prefix"], b["kind"], b["role"], b["write"], b["read"]) for b in axil.axi] == \
        [("s_axil", "axi4-lite", "slave", True, True)]
    assert "s_axil_awprot" in axil.axi[0]["ports"] and "clk" not in axil.axi[0]["ports"]
    axi = interface.extract([PUBLIC / "axi_ram.v"], "axi_ram")
    assert [(b["prefix"], b["kind"], b["role"]) for b in axi.axi] == [("s_axi", "axi4", "slave")]
    assert axi.qualifiers["s_axi_rdata"] == "s_axi_rvalid"
    assert interface.ModuleInterface.from_json(json.loads(json.dumps(axi.to_json()))).axi == axi.axi

    def port(name, direction):
        return Port(name=name, direction=direction, width=1)

    out, inp = "output", "input"
    master_read = [port("m_axil_araddr", out), port("m_axil_arvalid", out), port("m_axil_arready", inp),
                   port("m_axil_rdata", inp), port("m_axil_rvalid", inp), port("m_axil_rready", out)]
    assert [(b["role"], b["write"], b["read"]) for b in buses.axi(master_read)] == [("master", False, True)]
    wrong_way = [port("s_axil_araddr", inp), port("s_axil_arvalid", inp), port("s_axil_arready", out),
                 port("s_axil_rdata", out), port("s_axil_rvalid", out), port("s_axil_rready", out)]
    assert buses.axi(wrong_way) == []  # rready driven by the slave: not a bus cocotbext-axi could take


def test_wishbone_slave_by_role():
    from verifenv import buses
    from verifenv.syntax import Port

    pipelined = interface.extract([RTL / "wb_regs.v"], "wb_regs")
    assert pipelined.wishbone == {"cyc": "wb_cyc_i", "stb": "wb_stb_i", "we": "wb_we_i", "adr": "wb_adr_i",
                                  "dat_w": "wb_dat_i", "sel": "wb_sel_i", "dat_r": "wb_dat_o", "ack": "wb_ack_o",
                                  "stall": "wb_stall_o"}
    assert pipelined.qualifiers["wb_dat_o"] == "wb_ack_o" and "wishbone" in pipelined.protocols
    classic = interface.extract([PUBLIC / "wb_ram.v"], "wb_ram")
    assert classic.wishbone["cyc"] == "cyc_i" and "stall" not in classic.wishbone
    zipcpu = [Port(name=n, direction=d, width=1) for n, d in (("i_wb_cyc", "input"), ("i_wb_stb", "input"),
                                                                ("i_wb_we", "input"), ("o_wb_ack", "output"),
                                                                ("o_wb_stall", "output"))]
    assert buses.wishbone(zipcpu) == {"cyc": "i_wb_cyc", "stb": "i_wb_stb", "we": "i_wb_we", "ack": "o_wb_ack",
                                      "stall": "o_wb_stall"}
