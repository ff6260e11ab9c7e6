"""The generated environments under real simulators, and the acceptance ladder's verdicts."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from tests.verifenv.conftest import MODELS, PUBLIC, RTL, make_env, require_sim
from verifenv import ladder

SMOKE = [
    ("counter.v", "counter", "icarus"),
    ("adder95.v", "adder95", "icarus"),
    ("ifdef_ports.v", "ifdef_ports", "icarus"),
    ("stream_reg.v", "stream_reg", "icarus"),
    ("two_clock.v", "two_clock", "icarus"),
    ("acc_clear.v", "acc_clear", "icarus"),  # its only reset is a synchronous `clear`, found by use
    ("axis_fifo_x.v", "axis_fifo_x", "icarus"),  # m_axis_tdata is X while m_axis_tvalid is low
]


@pytest.mark.parametrize(("rtl", "top", "sim"), SMOKE, ids=[s[1] for s in SMOKE])
def test_generated_environment_builds_and_passes_smoke(tmp_path, quick_cfg, rtl, top, sim):
    require_sim(sim)
    iface, chosen = make_env(tmp_path, rtl, top)
    assert chosen == sim  # Verilog to Icarus, SystemVerilog to Verilator
    report = ladder.check(tmp_path, quick_cfg, sim, top, upto="L2")
    assert [lv.status for lv in report.levels[:3]] == ["pass", "pass", "pass"], report.table()
    assert report.claimed == "L2"
    saved = json.loads((tmp_path / "reports" / "check.json").read_text())
    assert saved["claimed"] == "L2" and saved["levels"][2]["status"] == "pass"
    assert (tmp_path / "reports" / "check.txt").read_text().startswith(f"verif-env check: {top}")
    cov = json.loads(next((tmp_path / "reports" / "sim" / "L2").glob("coverage_seed*.json")).read_text())
    assert set(cov["ports"]) == set(iface_ports(iface))


@pytest.fixture(scope="module")
def fifo_env(tmp_path_factory):
    """One Verilator build shared by the tests below (a build costs tens of seconds here): a FIFO whose port
    types come from a package, whose header sits in an include folder, both named by its Bender.yml, and
    whose protocol rules are `ASSERT`/`ASSUME` macros."""
    require_sim("verilator")
    out = tmp_path_factory.mktemp("fifo")
    make_env(out, "svpkg", "fx_fifo")
    return out


def test_package_importing_systemverilog_under_verilator(fifo_env, quick_cfg):
    report = ladder.check(fifo_env, quick_cfg, "verilator", "fx_fifo", upto="L2")
    assert [lv.status for lv in report.levels[:3]] == ["pass", "pass", "pass"], report.table()
    rtl = json.loads((fifo_env / "verifenv.json").read_text())["rtl"]
    assert [p.rsplit("/", 1)[-1] for p in rtl] == ["fx_pkg.sv", "fx_fifo.sv"]


def iface_ports(iface):
    special = {c.name for c in iface.clocks} | {r.name for r in iface.resets}
    return [p.name for p in iface.ports if p.active() and p.name not in special]


def test_hand_model_agrees_and_kills_mutants(tmp_path, quick_cfg):
    require_sim("icarus")
    make_env(tmp_path, "counter.v", "counter", model="counter_model.py")
    report = ladder.check(tmp_path, quick_cfg, "icarus", "counter", mutants=3)
    assert report.status("L3") == "pass", report.table()
    assert report.levels[3].data["compared"] > 0
    l5 = report.levels[5]
    assert l5.level == "L5" and l5.status == "pass", report.table()
    assert l5.data["killed"] == 3 and l5.data["score"] == 1.0
    assert [m.outcome for m in report.mutants] == ["killed"] * 3
    assert report.claimed == "L5"


def test_combinational_model(tmp_path, quick_cfg):
    """`eval` instead of `step` for a design without clock (bench/verifenv.py reports its mutation score)."""
    require_sim("icarus")
    make_env(tmp_path, "adder95.v", "adder95", model="adder95_model.py")
    report = ladder.check(tmp_path, quick_cfg, "icarus", "adder95", upto="L4")
    assert report.status("L3") == "pass", report.table()


def test_wrong_model_is_caught_by_l3(tmp_path, quick_cfg):
    require_sim("icarus")
    make_env(tmp_path, "counter.v", "counter", model="counter_wrong.py")
    report = ladder.check(tmp_path, quick_cfg, "icarus", "counter", mutants=2)
    l3 = report.levels[3]
    assert l3.status == "fail" and "mismatch" in l3.detail and "count" in l3.detail, report.table()
    assert report.status("L5") == "skip"  # mutants are meaningless against a model that disagrees already
    assert report.claimed == "L2"


def test_a_model_that_returns_nothing_claims_nothing(tmp_path, quick_cfg):
    require_sim("icarus")
    make_env(tmp_path, "counter.v", "counter")  # not stream-like: no transfer scoreboard either
    report = ladder.check(tmp_path, quick_cfg, "icarus", "counter")
    assert report.status("L3") == "not_shown" and report.claimed == "L2"


def test_transfer_scoreboard_shows_l3_and_kills_stream_mutants_without_a_model(tmp_path, quick_cfg):
    require_sim("icarus")
    make_env(tmp_path, "axis_fifo_x.v", "axis_fifo_x", cycles=60)
    report = ladder.check(tmp_path, quick_cfg, "icarus", "axis_fifo_x", mutants=4)
    l3, l5 = report.levels[3], report.levels[5]
    assert l3.status == "pass" and l3.data["transfers"] > 0, report.table()
    assert l3.data["transfer_fields"] == ["data", "last", "user"] and "in order" in l3.detail
    assert l3.data["axis_frames"] > 0  # cocotbext-axi's source and sink, with pauses on both sides
    learned = json.loads((tmp_path / "tb" / "transfer_fields.json").read_text())
    assert learned["fields"] == ["data", "last", "user"] and learned["learned"]["lost"] == 0
    assert l5.status == "pass" and l5.data["score"] >= 0.75, report.table()
    assert any("transfer scoreboard" in m.why or "never came out" in m.why for m in report.mutants), \
        report.mutants
    cov = json.loads(next((tmp_path / "reports" / "sim" / "L2").glob("coverage_seed*.json")).read_text())
    assert cov["handshakes"]["s_axis_s_axis_tvalid"]["stall"] > 0  # back-pressure phases reached the input
    assert cov["points"]["m_axis: stall"] > 0 and cov["points"]["s_axis: transfer"] > 0
    assert (tmp_path / "reports" / "sim" / "L2" / "functional_coverage_seed1.xml").exists()  # cocotb-coverage


def test_a_design_that_drops_beats_marked_bad_is_judged_with_tuser_held_low(tmp_path, quick_cfg):
    """With random tuser, axis_drop_bad loses the beats it marks bad; the learning run retries with tuser at 0,
    every beat comes out, and the scoreboard judges the data with tuser held there (mutants too)."""
    require_sim("icarus")
    make_env(tmp_path, "axis_drop_bad.v", "axis_drop_bad", cycles=60)
    report = ladder.check(tmp_path, quick_cfg, "icarus", "axis_drop_bad", mutants=3)
    l3, l5 = report.levels[3], report.levels[5]
    assert l3.status == "pass" and "user held at 0" in l3.detail, report.table()
    learned = json.loads((tmp_path / "tb" / "transfer_fields.json").read_text())
    assert learned["hold_low"] == ["user"] and "data" in learned["fields"]
    assert l5.status == "pass", report.table()


def test_transfer_scoreboard_does_not_judge_a_design_that_transforms_data(tmp_path, quick_cfg):
    require_sim("icarus")
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    text = (MODELS.parent / "rtl" / "stream_reg.v").read_text()
    assert "m_data <= s_data;" in text
    (rtl / "stream_inv.v").write_text(text.replace("m_data <= s_data;", "m_data <= ~s_data;")
                                      .replace("module stream_reg", "module stream_inv"))
    from verifenv import filelist, generate, interface

    fs = filelist.resolve([rtl], "stream_inv")
    generate.generate(interface.extract(fs.files, "stream_inv"), fs, tmp_path / "env",
                      generate.GenerateOptions(sim="icarus", cycles=40))
    report = ladder.check(tmp_path / "env", quick_cfg, "icarus", "stream_inv")
    l3 = report.levels[3]
    assert l3.status == "not_shown" and "is transformed, not carried" in l3.detail, report.table()


def test_broken_generated_code_stops_at_l0(tmp_path, quick_cfg):
    make_env(tmp_path, "counter.v", "counter")
    (tmp_path / "tb" / "ref_model.py").write_text("class Model(:\n")
    report = ladder.check(tmp_path, quick_cfg, "icarus", "counter")
    assert report.levels[0].status == "fail" and "ref_model.py:1" in report.levels[0].detail
    assert {lv.status for lv in report.levels[1:]} == {"skip"} and report.claimed == "none"


def test_rtl_that_does_not_build_fails_l1(tmp_path, quick_cfg):
    require_sim("icarus")
    bad = tmp_path / "rtl"
    bad.mkdir()
    shutil.copy(MODELS.parent / "rtl" / "counter.v", bad / "counter.v")
    from verifenv import filelist, generate, interface

    fs = filelist.resolve([bad / "counter.v"], "counter")
    iface = interface.extract(fs.files, "counter")
    generate.generate(iface, fs, tmp_path / "env", generate.GenerateOptions(sim="icarus", cycles=10))
    (bad / "counter.v").write_text((bad / "counter.v").read_text().replace("count + 1'b1", "count + "))
    report = ladder.check(tmp_path / "env", quick_cfg, "icarus", "counter")
    l1 = report.levels[1]
    assert l1.status == "fail" and report.claimed == "L0", report.table()
    assert l1.detail.startswith("compiler: ") and "counter.v:" in l1.detail, l1.detail  # the first error line
    assert "file list (1): counter.v" in l1.detail and l1.data["errors"]


def test_dut_assertion_fails_smoke(fifo_env, quick_cfg):
    """Without the constraints read from its `ASSUME` macro, random stimulus takes from an empty FIFO: L2 says so."""
    constraints = fifo_env / "tb" / "constraints.py"
    text = constraints.read_text()
    start, end = text.index("    # <hole:constraints>"), text.index("    return inputs")
    try:
        constraints.write_text(text[:start] + text[end:])
        report = ladder.check(fifo_env, quick_cfg, "verilator", "fx_fifo", upto="L2", reuse_build=True)
    finally:
        constraints.write_text(text)
    assert report.levels[2].status == "fail", report.table()
    assert "DUT assertion fired" in report.levels[2].detail and "take_empty" in report.levels[2].detail


def test_pyuvm_variant_runs(tmp_path):
    require_sim("icarus")
    make_env(tmp_path, "stream_reg.v", "stream_reg", model="stream_reg_model.py", pyuvm=True)
    env = dict(__import__("os").environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "tb/test_runner.py", "-k", "test_uvm"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "scoreboard compared" in (tmp_path / "sim_build" / "icarus" / "uvm.log").read_text()


@pytest.mark.slow
def test_fifo_hand_model_mutation_score(tmp_path):
    """Verilator rebuilds per mutant: minutes. bench/verifenv.py reports the same score."""
    require_sim("verilator")
    from verifenv.config import VerifEnvConfig

    make_env(tmp_path, "fifo.sv", "fifo", model="fifo_model.py")
    report = ladder.check(tmp_path, VerifEnvConfig(cycles=100, seeds=2), "verilator", "fifo", mutants=6)
    assert report.status("L3") == "pass", report.table()
    assert report.levels[5].data["score"] >= 0.8, report.table()


def test_harness_errors_and_timeouts_are_never_counted_as_killed(tmp_path, quick_cfg, monkeypatch):
    """A mutant run that ends with pytest exit 5 (no tests) or a wall-clock kill is not a kill."""
    require_sim("icarus")
    from verifenv import process

    make_env(tmp_path, "counter.v", "counter")  # no model: L3 shows nothing, which does not stop L5
    real = ladder.Runner.pytest
    verdicts = iter([process.RunResult(5, 0.1, "no tests ran"), process.RunResult(None, 9.0, "")])

    def pytest(self, select, timeout_s, **env):
        if "VERIFENV_RTL" in env and select != "test_build":
            return next(verdicts)  # the mutant's simulation run: harness error, then a hang
        return real(self, select, timeout_s, **env)

    monkeypatch.setattr(ladder.Runner, "pytest", pytest)
    report = ladder.check(tmp_path, quick_cfg, "icarus", "counter", mutants=2)
    l5 = report.levels[5]
    assert [m.outcome for m in report.mutants] == ["error", "timeout"]
    assert l5.data["killed"] == 0 and l5.data["error"] == 1 and l5.data["timeout"] == 1
    assert l5.status == "fail" and l5.data["score"] == 0.0
    assert "harness error (pytest exit 5)" in report.mutants[0].why


def test_apb_requester_keeps_the_completer_protocol(tmp_path, quick_cfg):
    """The APB completer's own checker fires on random psel/penable; the generated APB requester never trips it."""
    require_sim("icarus")
    iface, _sim = make_env(tmp_path, "apb_regs.v", "apb_regs", cycles=80)
    assert iface.apb["psel"] == "psel" and iface.apb["pready"] == "pready"
    report = ladder.check(tmp_path, quick_cfg, "icarus", "apb_regs", upto="L2")
    assert report.status("L2") == "pass", report.table()
    tb = tmp_path / "tb" / "cocotb_apb_regs.py"
    tb.write_text(tb.read_text().replace("'apb': {", "'apb_off': {"))  # the same stimulus, APB as plain inputs
    report = ladder.check(tmp_path, quick_cfg, "icarus", "apb_regs", upto="L2", reuse_build=True)
    assert report.status("L2") == "fail" and "APB protocol" in report.levels[2].detail, report.table()


def test_a_wrapper_gets_its_mutants_from_the_modules_it_instantiates(tmp_path, quick_cfg):
    """pipe_top has no logic of its own: L5 draws from stream_reg, and the transfer scoreboard judges them."""
    require_sim("icarus")
    make_env(tmp_path, "pipe.f", "pipe_top", cycles=60)
    report = ladder.check(tmp_path, quick_cfg, "icarus", "pipe_top", mutants=2)
    assert report.status("L3") == "pass" and report.levels[3].data["transfers"] > 0, report.table()
    assert [m.id.split(".")[0] for m in report.mutants] == ["stream_reg", "stream_reg"]
    assert all(m.mutation.startswith("stream_reg.v line ") for m in report.mutants)
    assert report.levels[5].data["killed"] >= 1, report.table()


def _bus_counts(folder):
    return json.loads(next((folder / "reports" / "sim" / "L2").glob("coverage_seed*.json")).read_text())["buses"]


def test_axi_lite_slave_is_driven_through_cocotbext_axi(tmp_path, quick_cfg):
    """axil_regs's own checker stops a master that withdraws a valid or changes its payload: cocotbext-axi's
    AxiLiteMaster writes and reads it with pauses and back-pressure, and what was written reads back. A slave
    that never answers a write fails smoke, naming the write."""
    require_sim("icarus")
    cfg = dataclasses.replace(quick_cfg, cycles=150)
    make_env(tmp_path / "ok", "axil_regs.v", "axil_regs")
    report = ladder.check(tmp_path / "ok", cfg, "icarus", "axil_regs", upto="L2")
    assert report.status("L2") == "pass", report.table()
    axi = _bus_counts(tmp_path / "ok")["axi"]
    assert axi["write"] > 0 and axi["read"] > 0 and axi["error_responses"] == 0, axi
    assert axi["readback_agree"] > 0 and axi["readback_differ"] == 0, axi
    broken = tmp_path / "axil_regs.v"
    broken.write_text((RTL / "axil_regs.v").read_text().replace("s_axil_bvalid <= 1'b1;", "s_axil_bvalid <= 1'b0;"))
    make_env(tmp_path / "mute", str(broken), "axil_regs")
    report = ladder.check(tmp_path / "mute", cfg, "icarus", "axil_regs", upto="L2")
    assert report.status("L2") == "fail", report.table()
    assert "AXI s_axil write: write of 4 byte(s)" in report.levels[2].detail, report.table()


@pytest.mark.parametrize("top", ["axil_ram", "axi_ram", "axil_register", "wb_ram"])
def test_public_bus_slaves_pass_smoke_with_bus_traffic(tmp_path, quick_cfg, top):
    """verilog-axi's AXI4-Lite and AXI4 RAMs, its AXI4-Lite register slice (an AxiLiteMaster in front, an
    AxiLiteRam behind: what was written reads back through it), and verilog-wishbone's RAM (no reset, classic
    cycles)."""
    require_sim("icarus")
    iface, _sim = make_env(tmp_path, str(PUBLIC), top)
    if top == "axil_register":
        assert [(b["prefix"], b["role"]) for b in iface.axi] == [("m_axil", "master"), ("s_axil", "slave")]
    report = ladder.check(tmp_path, dataclasses.replace(quick_cfg, cycles=100), "icarus", top, upto="L2")
    assert report.status("L2") == "pass", report.table()
    counts = _bus_counts(tmp_path)
    if top == "wb_ram":
        assert counts["wishbone_transfers"] > 0
    else:
        assert counts["axi"]["write"] > 0 and counts["axi"]["read"] > 0, counts
        assert counts["axi"]["readback_agree"] > 0 and counts["axi"]["readback_differ"] == 0, counts


def test_wishbone_master_keeps_the_slave_protocol(tmp_path, quick_cfg):
    """wb_regs (pipelined: it stalls every other cycle) checks stb only inside cyc and cyc held until the ack:
    the generated Wishbone master keeps both; the same stimulus with Wishbone as plain inputs does not."""
    require_sim("icarus")
    iface, _sim = make_env(tmp_path, "wb_regs.v", "wb_regs")
    assert iface.wishbone["stall"] == "wb_stall_o"
    report = ladder.check(tmp_path, dataclasses.replace(quick_cfg, cycles=80), "icarus", "wb_regs", upto="L2")
    assert report.status("L2") == "pass", report.table()
    assert _bus_counts(tmp_path)["wishbone_transfers"] > 0
    tb = tmp_path / "tb" / "cocotb_wb_regs.py"
    tb.write_text(tb.read_text().replace("'wishbone': {", "'wishbone_off': {"))
    report = ladder.check(tmp_path, quick_cfg, "icarus", "wb_regs", upto="L2", reuse_build=True)
    assert report.status("L2") == "fail" and "Wishbone protocol" in report.levels[2].detail, report.table()


def test_parameter_overrides_reach_every_build_and_the_mutants(tmp_path, quick_cfg):
    """-G DATA_WIDTH=12: the simulator builds the 12-bit FIFO, the test reads the width from it, and L5 picks
    mutants with the overridden values."""
    require_sim("icarus")
    make_env(tmp_path, "axis_fifo_x.v", "axis_fifo_x", parameters=("DATA_WIDTH=12",))
    report = ladder.check(tmp_path, quick_cfg, "icarus", "axis_fifo_x", upto="L2")
    assert report.status("L2") == "pass", report.table()
    cov = json.loads(next((tmp_path / "reports" / "sim" / "L2").glob("coverage_seed*.json")).read_text())
    assert cov["ports"]["s_axis_tdata"]["width"] == 12
    assert ladder._params(tmp_path)["DATA_WIDTH"] == 12
