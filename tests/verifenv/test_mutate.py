from __future__ import annotations

import json
from pathlib import Path

from tests.verifenv.conftest import RTL
from verifenv import mutate


def test_mutants_only_touch_logic_not_declarations_or_assertions():
    src = (RTL / "fifo.sv").read_bytes()
    pool = mutate.candidates(src, "fifo")
    lines = {m.line for m in pool}
    assert lines and min(lines) >= 29  # nothing in the header, the declarations or the assertion block
    assert {m.kind for m in pool} == {"operator", "constant", "condition"}
    for m in pool:
        assert src[m.start:m.end].decode() == m.original


def test_selection_is_deterministic_and_spread():
    a = mutate.mutants(RTL / "counter.v", "counter", 3)
    b = mutate.mutants(RTL / "counter.v", "counter", 3)
    assert a == b and len(a) == 3
    assert len({m.line for m in a}) == 3


def test_apply():
    src = (RTL / "counter.v").read_bytes()
    plus = next(m for m in mutate.candidates(src, "counter") if m.original == "+")
    out = mutate.apply(src, plus).decode()
    assert "count <= count - 1'b1;" in out
    assert mutate.mutants(RTL / "counter.v", "counter", 0) == []


def test_code_the_parameters_switch_off_is_not_mutated():
    src = (b"module m #(parameter MODE = 0, parameter EN = 1) (input a, input b, output y, output z, output w);\n"
           b"  assign y = MODE ? (a && b) : (a || b);\n"
           b"  assign z = (a & b) && !EN;\n"
           b"  if (MODE) begin : g\n    assign w = a ^ b;\n  end else begin : h\n    assign w = a - b;\n  end\n"
           b"endmodule\n")
    every = {(m.line, m.original) for m in mutate.candidates(src, "m")}
    live = {(m.line, m.original) for m in mutate.candidates(src, "m", {"MODE": 0, "EN": 1})}
    assert (2, "&&") in every and (2, "&&") not in live  # the MODE branch of the ternary is dead
    assert (2, "||") in live
    assert (3, "&") in every and (3, "&") not in live  # beside a false parameter conjunct it changes nothing
    assert (5, "^") in every and (5, "^") not in live and (7, "-") in live  # generate if


def test_a_change_that_leaves_a_parameter_expression_as_it_was_is_not_a_mutant():
    src = (b"module m #(parameter A = 0, parameter B = 0) (input [1:0] x, output [1:0] y);\n"
           b"  assign y = (A && B) ? x : ~x;\nendmodule\n")
    assert (2, "&&") not in {(m.line, m.original) for m in mutate.candidates(src, "m", {"A": 0, "B": 0})}
    assert (2, "&&") in {(m.line, m.original) for m in mutate.candidates(src, "m", {"A": 1, "B": 0})}


def test_a_wrappers_borrowed_mutants_follow_the_instance_parameters(tmp_path):
    from verifenv import filelist, ladder

    (tmp_path / "sub.v").write_text("module sub #(parameter MODE = 0) (input a, input b, output y);\n"
                                    "  assign y = MODE ? (a & b) : (a | b);\nendmodule\n")
    (tmp_path / "unused.v").write_text("module unused (input a, output y);\n  assign y = !a;\nendmodule\n")
    (tmp_path / "top.v").write_text("module top (input a, input b, output y);\n"
                                    "  sub #(.MODE(1)) u_sub (.a(a), .b(b), .y(y));\nendmodule\n")
    fs = filelist.resolve([tmp_path / "top.v", tmp_path / "sub.v", tmp_path / "unused.v"], "top")
    picked = ladder._pick_mutants([Path(f) for f in fs.files], "top", 3, {})
    assert [(p.name, m.original) for p, m in picked] == [("sub.v", "&")]  # MODE = 1: the `|` branch is dead


def test_a_wrappers_borrowed_mutants_follow_its_parameter_overrides(tmp_path):
    """-G TOP_MODE=0 reaches the instance: the other branch of the submodule is the live one."""
    from verifenv import filelist, ladder

    (tmp_path / "sub.v").write_text("module sub #(parameter MODE = 0) (input a, input b, output y);\n"
                                    "  assign y = MODE ? (a & b) : (a | b);\nendmodule\n")
    (tmp_path / "top.v").write_text("module top #(parameter TOP_MODE = 1) (input a, input b, output y);\n"
                                    "  sub #(.MODE(TOP_MODE)) u_sub (.a(a), .b(b), .y(y));\nendmodule\n")
    fs = filelist.resolve([tmp_path / "top.v", tmp_path / "sub.v"], "top")
    out = tmp_path / "env"
    out.mkdir()
    (out / "verifenv.json").write_text(json.dumps({"options": {"parameters": ["TOP_MODE=0"]}}))
    picked = ladder._pick_mutants([Path(f) for f in fs.files], "top", 3, {}, out)
    assert [(p.name, m.original) for p, m in picked] == [("sub.v", "|")]
