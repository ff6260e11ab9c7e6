from __future__ import annotations

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
