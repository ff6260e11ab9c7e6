"""Hand-written reference model of tests/verifenv/rtl/negclk.v (acts on the falling edge)."""

from __future__ import annotations


class Model:
    def __init__(self, params: dict[str, int]) -> None:
        self.q = 0

    def reset(self) -> dict[str, int] | None:
        self.q = 0
        return {"q": 0}

    def step(self, inputs: dict[str, int]) -> dict[str, int] | None:
        self.q = inputs["d"]
        return {"q": self.q}
