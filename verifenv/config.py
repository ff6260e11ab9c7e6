"""The `[verifenv]` config section: simulation length, seeds, mutants, repair rounds and the ladder's bars.

Resolved once by `verifenv.cli.verif_env` (defaults < inhouse.toml < INHOUSE_VERIFENV_* < flags) and passed down.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import config


@config.section("verifenv")
@dataclass(frozen=True)
class VerifEnvConfig:
    sim: str = ""  # "" picks by language: icarus for Verilog, verilator for SystemVerilog
    cycles: int = 200  # random-stimulus cycles per test
    reset_cycles: int = 3  # clock cycles reset is held
    period_ns: int = 10  # primary clock period; further clocks get 14, 18, ... ns (not harmonics)
    seeds: int = 3  # L3 runs the scoreboard with this many seeds
    mutants: int = 0  # L5 mutants (0: L5 not run)
    max_repair: int = 2  # --fill rounds that feed failures back to the model
    min_toggle: float = 0.5  # L4: share of port bits seen rising and falling
    min_mutation_score: float = 0.8  # L5: killed / (killed + survived + timed out)
    build_timeout_s: float = 600.0  # wall clock per build (the process group is killed past it)
    run_timeout_s: float = 300.0  # wall clock per simulation run
    fill_max_new_tokens: int = 384  # token bound for each model-filled hole
    python_runs: int = 3  # the Python twin keeps a test only if it passes this many runs in a row
    verilator_coverage: bool = True  # build Verilator with line and toggle coverage (shown at L4)
    memory_limit_mb: int = 4096  # address space per build or simulation run (0: none); a runaway mutant stops

    def __post_init__(self) -> None:
        config.require(self.sim in ("", "icarus", "verilator"), "sim", "one of '', icarus, verilator", self.sim)
        config.require(self.cycles > 0, "cycles", "> 0", self.cycles)
        config.require(self.reset_cycles > 0, "reset_cycles", "> 0", self.reset_cycles)
        config.require(self.period_ns >= 2, "period_ns", ">= 2", self.period_ns)
        config.require(self.seeds > 0, "seeds", "> 0", self.seeds)
        config.require(self.mutants >= 0, "mutants", ">= 0", self.mutants)
        config.require(self.max_repair >= 0, "max_repair", ">= 0", self.max_repair)
        config.require(0.0 <= self.min_toggle <= 1.0, "min_toggle", "between 0 and 1", self.min_toggle)
        config.require(0.0 <= self.min_mutation_score <= 1.0, "min_mutation_score", "between 0 and 1",
                       self.min_mutation_score)
        config.require(self.build_timeout_s > 0, "build_timeout_s", "> 0", self.build_timeout_s)
        config.require(self.run_timeout_s > 0, "run_timeout_s", "> 0", self.run_timeout_s)
        config.require(self.fill_max_new_tokens > 0, "fill_max_new_tokens", "> 0", self.fill_max_new_tokens)
        config.require(self.python_runs > 0, "python_runs", "> 0", self.python_runs)
        config.require(self.memory_limit_mb >= 0, "memory_limit_mb", ">= 0", self.memory_limit_mb)
