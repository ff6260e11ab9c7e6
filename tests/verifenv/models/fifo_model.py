"""Hand-written reference model of tests/verifenv/rtl/fifo.sv (queue with level, full and empty)."""

from __future__ import annotations


class Model:
    def __init__(self, params: dict[str, int]) -> None:
        self.depth = params["DEPTH"]
        self.queue: list[int] = []

    def reset(self) -> dict[str, int] | None:
        self.queue = []
        return {"level": 0, "full": 0, "empty": 1}

    def step(self, inputs: dict[str, int]) -> dict[str, int] | None:
        if inputs["pop"] and self.queue:
            self.queue.pop(0)
        if inputs["push"] and len(self.queue) < self.depth:
            self.queue.append(inputs["wdata"])
        out = {"level": len(self.queue), "full": int(len(self.queue) == self.depth), "empty": int(not self.queue)}
        if self.queue:
            out["rdata"] = self.queue[0]
        return out
