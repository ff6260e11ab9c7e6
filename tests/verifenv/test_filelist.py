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
