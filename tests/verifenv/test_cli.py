"""`inhouse verif-env` through the root CLI: generation, flags, and one-line errors."""

from __future__ import annotations

import json

from app.cli import main
from tests.verifenv.conftest import RTL
from tests.verifenv.test_python_twin import SHAPES


def test_generate_only(tmp_path, capsys):
    out = tmp_path / "env"
    assert main(["verif-env", str(RTL / "fifo.sv"), "--top", "fifo", "-o", str(out), "--pyuvm", "--cycles", "64"]) == 0
    assert "fifo -> " in capsys.readouterr().out
    manifest = json.loads((out / "verifenv.json").read_text())
    assert manifest["sim"] == "verilator" and manifest["options"]["cycles"] == 64 and manifest["git_sha"]
    assert (out / "tb" / "uvm_fifo.py").is_file()
    assert json.loads((out / "interface.json").read_text())["name"] == "fifo"


def test_sim_flag_and_file_list(tmp_path):
    out = tmp_path / "env"
    assert main(["verif-env", str(RTL / "pipe.f"), "--top", "pipe_top", "-o", str(out), "--sim", "verilator"]) == 0
    manifest = json.loads((out / "verifenv.json").read_text())
    assert manifest["sim"] == "verilator" and manifest["defines"] == ["PIPE_LIST"]
    assert [p.rsplit("/", 1)[-1] for p in manifest["rtl"]] == ["stream_reg.v", "pipe_top.v"]


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["verif-env", str(RTL / "counter.v"), "-o", str(tmp_path)]) == 2
    assert "`--top` is required" in capsys.readouterr().err
    assert main(["verif-env", str(RTL / "counter.v"), "--top", "counter", "-o", str(tmp_path), "--sim", "xcelium"]) == 2
    assert "`sim` must be one of" in capsys.readouterr().err
    assert main(["verif-env", str(RTL / "counter.v"), "--top", "nope", "-o", str(tmp_path)]) == 2
    assert "'nope' is not declared" in capsys.readouterr().err
    assert main(["verif-env", str(RTL / "counter.v"), "--top", "counter", "-o", str(tmp_path), "-G", "WIDTH"]) == 2
    assert "`--param` must be NAME=VALUE, got 'WIDTH'" in capsys.readouterr().err


def test_parameter_overrides_reach_the_runner(tmp_path):
    out = tmp_path / "env"
    assert main(["verif-env", str(RTL / "counter.v"), "--top", "counter", "-o", str(out), "-G", "WIDTH=12"]) == 0
    assert "'parameters': {'WIDTH': '12'}" in (out / "tb" / "test_runner.py").read_text()
    assert json.loads((out / "verifenv.json").read_text())["options"]["parameters"] == ["WIDTH=12"]


def test_python_module(tmp_path, capsys):
    assert main(["verif-env", str(SHAPES), "-o", str(tmp_path / "py")]) == 0
    assert "verif-env python:" in capsys.readouterr().out
    assert (tmp_path / "py" / "test_shapes_smoke.py").is_file()


def test_fill_without_a_reachable_backend_is_one_clear_line(tmp_path, capsys):
    out = tmp_path / "env"
    code = main(["verif-env", str(RTL / "counter.v"), "--top", "counter", "-o", str(out), "--fill",
                 "--backend-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "inhouse: error:" in err and len(err.strip().splitlines()) == 1, err
    assert "return None" in (out / "tb" / "ref_model.py").read_text()  # the generated environment is intact
