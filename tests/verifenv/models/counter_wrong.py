"""A deliberately wrong counter model: `load` takes priority wrongly below `en` (L3 must catch it)."""

from __future__ import annotations


class Model:
    def __init__(self, params: dict[str, int]) -> None:
        self.width = params["WIDTH"]
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int] | None:
        mask = (1 << self.width) - 1
        if inputs["en"]:
            self.count = (self.count + 1) & mask
        elif inputs["load"]:
            self.count = inputs["din"] & mask
        return {"count": self.count}
