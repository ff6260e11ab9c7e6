"""Hand-written reference model of tests/verifenv/rtl/counter.v (the scoreboard's reference in the tests)."""

from __future__ import annotations


class Model:
    def __init__(self, params: dict[str, int]) -> None:
        self.width = params["WIDTH"]
        self.init = params.get("INIT", 0)
        self.count = self.init

    def reset(self) -> dict[str, int] | None:
        self.count = self.init
        return {"count": self.count, "wrap": 0}  # en is held low during reset

    def step(self, inputs: dict[str, int]) -> dict[str, int] | None:
        mask = (1 << self.width) - 1
        if inputs["load"]:
            self.count = inputs["din"] & mask
        elif inputs["en"]:
            self.count = (self.count + 1) & mask
        return {"count": self.count, "wrap": int(bool(inputs["en"]) and self.count == mask)}
