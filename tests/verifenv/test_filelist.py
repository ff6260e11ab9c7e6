from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ValidationError
from tests.verifenv.conftest import RTL
from verifenv import filelist


def names(fs: filelist.FileSet) -> list[str]:
    return [Path(f).name for f in fs.files]


def test_closure_from_a_folder_keeps_only_what_the_top_needs():
    fs = filelist.resolve([RTL], "pipe_top")
    assert names(fs) == ["stream_reg.v", "pipe_top.v"]  # dependencies first, the top last
    assert fs.missing == ()


def test_single_module_closure():
    assert names(filelist.resolve([RTL], "counter")) == ["counter.v"]


def test_f_file_list_with_nested_list_and_define(tmp_path):
    fs = filelist.resolve([RTL / "pipe.f"], "pipe_top")
    assert names(fs) == ["stream_reg.v", "pipe_top.v"]
    assert fs.defines == ("PIPE_LIST",)
    out = tmp_path / "rtl.f"
    fs.write_f(out)
    lines = out.read_text().splitlines()
    assert lines[0] == "+define+PIPE_LIST" and lines[-1].endswith("pipe_top.v")


def test_missing_instances_are_reported(tmp_path):
    (tmp_path / "top.v").write_text("module top(input a, output y);\n  vendor_cell u0 (.A(a), .Y(y));\nendmodule\n")
    fs = filelist.resolve([tmp_path], "top")
    assert fs.missing == ("vendor_cell",)


def test_bad_inputs_name_what_was_wrong(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        filelist.resolve([tmp_path / "nope.v"], "x")
    with pytest.raises(ValidationError, match="'absent'.*modules found: .*counter"):
        filelist.resolve([RTL], "absent")
    bad = tmp_path / "bad.f"
    bad.write_text("missing_file.v\n")
    with pytest.raises(ValidationError, match="missing_file.v"):
        filelist.resolve([bad], "x")


SVPKG = RTL / "svpkg"


def test_bender_manifest_puts_the_package_first_and_keeps_test_targets_out():
    fs = filelist.resolve([SVPKG], "fx_fifo")
    assert names(fs) == ["fx_pkg.sv", "fx_fifo.sv"]  # the package the ports use, before its user
    assert fs.packages == ("fx_pkg",)
    assert str((SVPKG / "include").resolve()) in fs.includes  # export_include_dirs
    assert fs.unresolved_includes == () and fs.missing == ()
    collected = filelist.collect([SVPKG])
    assert "fx_fifo_tb" not in filelist.declarations(collected.files)  # under `target: test`


def test_f_list_with_incdir_define_and_nested_list_resolves_the_package(tmp_path):
    inner = tmp_path / "inner.f"
    inner.write_text(f"{SVPKG / 'src' / 'fx_fifo.sv'}\n")
    outer = tmp_path / "outer.f"
    outer.write_text(f"+incdir+{SVPKG / 'include'}\n+define+FX_SIM+FX_WIDE\n// a comment\n"
                     f"{SVPKG / 'src' / 'fx_pkg.sv'}\n-f inner.f\n")
    fs = filelist.resolve([outer], "fx_fifo")
    assert names(fs) == ["fx_pkg.sv", "fx_fifo.sv"]
    assert fs.defines == ("FX_SIM", "FX_WIDE")
    assert fs.includes[0] == str((SVPKG / "include").resolve())


def test_a_folder_without_manifest_finds_the_package_and_the_header_folder():
    fs = filelist.resolve([SVPKG / "src"], "fx_fifo")  # no Bender.yml here: files by name, header searched
    assert names(fs) == ["fx_pkg.sv", "fx_fifo.sv"]
    assert str((SVPKG / "include").resolve()) in fs.includes


def test_package_that_imports_another_package_comes_after_it(tmp_path):
    (tmp_path / "a_pkg.sv").write_text("package a_pkg;\n  typedef logic [3:0] t;\nendpackage\n")
    (tmp_path / "b_pkg.sv").write_text("package b_pkg;\n  import a_pkg::*;\n  typedef t [1:0] u;\nendpackage\n")
    (tmp_path / "top.sv").write_text("module top(input b_pkg::u x, output logic y);\n"
                                     "  // a_pkg::t in a comment names nothing\n  assign y = ^x;\nendmodule\n")
    fs = filelist.resolve([tmp_path], "top")
    assert names(fs) == ["a_pkg.sv", "b_pkg.sv", "top.sv"] and fs.packages == ("a_pkg", "b_pkg")


@pytest.mark.parametrize(("expr", "active"), [
    ("not(synthesis)", True), ("test", False), ("all(rtl, not(xilinx))", True), ("any(fpga, asic)", False),
    ("*", True), ("all(simulation,not(all(xilinx,vivado_ipx)))", True),
])
def test_bender_target_expressions(expr, active):
    from verifenv.manifest import target_active

    assert target_active(expr) is active


def test_fusesoc_core_and_src_files_yml(tmp_path):
    from verifenv.manifest import read_manifest

    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "h.svh").write_text("`define W 4\n")
    (tmp_path / "p.sv").write_text("package p; endpackage\n")
    (tmp_path / "m.sv").write_text("module m; endmodule\n")
    (tmp_path / "tb.sv").write_text("module tb; endmodule\n")
    (tmp_path / "x.core").write_text(
        "CAPI=2:\nname: a:b:c:1.0\nfilesets:\n  rtl:\n    files:\n"
        "      - inc/h.svh : {is_include_file : true, include_path : inc}\n      - p.sv\n      - m.sv\n"
        "    file_type: systemVerilogSource\n  tb:\n    files: [tb.sv]\n"
        "targets:\n  default:\n    filesets: [rtl, tb]\n")
    core = read_manifest(tmp_path)
    assert [f.name for f in core.files] == ["p.sv", "m.sv"] and core.includes == [str((tmp_path / "inc").resolve())]
    (tmp_path / "x.core").unlink()
    (tmp_path / "src_files.yml").write_text("lib:\n  incdirs: [inc]\n  defines: [FAST]\n  files: [p.sv, m.sv]\n"
                                            "lib_tb:\n  files: [tb.sv]\n")
    listed = read_manifest(tmp_path)
    assert [f.name for f in listed.files] == ["p.sv", "m.sv"] and listed.defines == ["FAST"]


def test_a_broken_manifest_is_named(tmp_path):
    (tmp_path / "Bender.yml").write_text("sources: [a.sv\n")
    with pytest.raises(ValidationError, match="Bender.yml: not valid YAML"):
        filelist.resolve([tmp_path], "x")
