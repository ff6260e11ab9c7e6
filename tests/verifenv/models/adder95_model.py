"""Hand-written reference model of tests/verifenv/rtl/adder95.v (combinational: `eval`)."""

from __future__ import annotations


class Model:
    def __init__(self, params: dict[str, int]) -> None:
        self.n = params["N"]

    def reset(self) -> None:
        pass

    def eval(self, inputs: dict[str, int]) -> dict[str, int] | None:
        total = inputs["a"] + inputs["b"] + inputs["cin"]
        return {"sum": total & ((1 << self.n) - 1), "cout": total >> self.n}
