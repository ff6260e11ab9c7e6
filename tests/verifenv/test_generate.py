from __future__ import annotations

import ast
import json

import pytest

from tests.verifenv.conftest import make_env
from verifenv import ladder


def test_generation_is_deterministic(tmp_path):
    make_env(tmp_path / "a", "fifo.sv", "fifo")
    make_env(tmp_path / "b", "fifo.sv", "fifo")
    for rel in ("tb/cocotb_fifo.py", "tb/test_runner.py", "tb/ref_model.py", "tb/constraints.py", "Makefile",
                "interface.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_layout_and_l0(tmp_path):
    make_env(tmp_path, "stream_reg.v", "stream_reg", pyuvm=True)
    for rel in ("interface.json", "verifenv.json", "rtl.f", "Makefile", "pytest.ini", "tb/cocotb_stream_reg.py",
                "tb/test_runner.py", "tb/ref_model.py", "tb/constraints.py", "tb/coverage_points.py",
                "tb/uvm_stream_reg.py"):
        assert (tmp_path / rel).is_file(), rel
    manifest = json.loads((tmp_path / "verifenv.json").read_text())
    assert manifest["owned"] == ["tb/constraints.py", "tb/coverage_points.py", "tb/ref_model.py"]
    assert ladder.level0(tmp_path).status == "pass"
    spec = (tmp_path / "tb" / "cocotb_stream_reg.py").read_text()
    assert "'qualifiers': {'m_data': 'm_valid'}" in spec
    assert "timeout_time=TIMEOUT_NS" in spec


def test_owned_files_survive_regeneration_unless_forced(tmp_path):
    make_env(tmp_path, "counter.v", "counter")
    model = tmp_path / "tb" / "ref_model.py"
    model.write_text("class Model:\n    pass  # mine\n")
    runner = tmp_path / "tb" / "test_runner.py"
    runner.write_text("# edited generated file\n")
    make_env(tmp_path, "counter.v", "counter")
    assert "# mine" in model.read_text()
    assert "edited" not in runner.read_text()  # generated files are always rewritten
    assert json.loads((tmp_path / "verifenv.json").read_text())["kept"] == [
        "tb/constraints.py", "tb/coverage_points.py", "tb/ref_model.py"]
    make_env(tmp_path, "counter.v", "counter", force=True)
    assert "# mine" not in model.read_text()


def test_assertions_become_stimulus_constraints(tmp_path):
    make_env(tmp_path, "fifo.sv", "fifo")
    text = (tmp_path / "tb" / "constraints.py").read_text()
    assert "if outputs.get('full'):" in text and "inputs['push'] = 0" in text
    assert "if outputs.get('empty'):" in text and "inputs['pop'] = 0" in text
    ns: dict = {}
    exec(compile(text, "constraints.py", "exec"), ns)
    assert ns["constrain"]({"push": 1, "pop": 1, "wdata": 3}, {"full": 1, "empty": 1}, None) == {
        "push": 0, "pop": 0, "wdata": 3}


def test_ifdef_port_only_with_its_define(tmp_path):
    make_env(tmp_path, "ifdef_ports.v", "ifdef_ports")
    spec = (tmp_path / "tb" / "cocotb_ifdef_ports.py").read_text()
    assert "dbg_state" not in spec.split("SPEC =", 1)[1].split("CYCLES", 1)[0]


def test_combinational_model_contract(tmp_path):
    make_env(tmp_path, "adder95.v", "adder95")
    tree = ast.parse((tmp_path / "tb" / "ref_model.py").read_text())
    model = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert {f.name for f in model.body if isinstance(f, ast.FunctionDef)} == {"__init__", "reset", "eval"}


def test_negedge_clock_and_unpacked_array(tmp_path):
    iface, _sim = make_env(tmp_path, "negclk.v", "negclk")
    assert iface.clocks[0].edge == "negedge"
    tbl = iface.port("tbl")
    assert (tbl.unpacked, tbl.packed, tbl.width) == (("[0:3]",), ("[7:0]",), None)
    assert iface.authority == "pyslang" and iface.disagreements == ()
    spec = (tmp_path / "tb" / "cocotb_negclk.py").read_text()
    assert "'edge': 'negedge'" in spec and "'not_driven': ['tbl']" in spec and "'inputs': ['d']" in spec


def test_parameter_overrides_are_name_value_pairs():
    from core.errors import ValidationError
    from verifenv.generate import parameter_overrides

    assert parameter_overrides(("W=8", " DEPTH = 0x10 ")) == {"W": "8", "DEPTH": "0x10"}
    with pytest.raises(ValidationError, match="`--param` must be NAME=VALUE, got 'W'"):
        parameter_overrides(("W",))
