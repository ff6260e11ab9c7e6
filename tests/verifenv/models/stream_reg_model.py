"""Hand-written reference model of tests/verifenv/rtl/stream_reg.v (valid/ready register slice)."""

from __future__ import annotations


class Model:
    def __init__(self, params: dict[str, int]) -> None:
        self.valid = 0
        self.data = 0

    def reset(self) -> dict[str, int] | None:
        self.valid = 0
        return {"m_valid": 0, "s_ready": 1}

    def step(self, inputs: dict[str, int]) -> dict[str, int] | None:
        if not self.valid or inputs["m_ready"]:
            self.valid = inputs["s_valid"]
            if inputs["s_valid"]:
                self.data = inputs["s_data"]
        out = {"m_valid": self.valid, "s_ready": int(not self.valid or bool(inputs["m_ready"]))}
        if self.valid:
            out["m_data"] = self.data
        return out
