"""Fixtures for verif-env: the RTL written for these tests, hand-written models, and environment builders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from verifenv import filelist, generate, interface
from verifenv import sim as simulators
from verifenv.config import VerifEnvConfig

HERE = Path(__file__).resolve().parent
RTL = HERE / "rtl"
PUBLIC = HERE / "rtl_public"  # public RTL, copied unchanged (verilog-axi, verilog-wishbone)
MODELS = HERE / "models"


def require_sim(sim: str) -> None:
    reason = simulators.unavailable(sim)
    if reason:
        pytest.skip(reason)


def make_env(out: Path, rtl: str, top: str, *, sim: str | None = None, cycles: int = 30, model: str | None = None,
             force: bool = False, pyuvm: bool = False, parameters: tuple[str, ...] = ()):
    """Generate the environment for one fixture; optionally install a hand-written reference model."""
    fileset = filelist.resolve([RTL / rtl], top)
    iface = interface.extract(fileset.files, top, fileset.defines, fileset.includes)
    language = "systemverilog" if any(f.endswith((".sv", ".svh")) for f in fileset.files) else "verilog"
    sim = sim or simulators.default_for(language)
    generate.generate(iface, fileset, out, generate.GenerateOptions(sim=sim, cycles=cycles, force=force, pyuvm=pyuvm,
                                                                    parameters=parameters))
    if model:
        shutil.copy(MODELS / model, out / "tb" / "ref_model.py")
    return iface, sim


@pytest.fixture
def quick_cfg() -> VerifEnvConfig:
    """Few cycles, one seed: the default test run shares two cores with other work."""
    return VerifEnvConfig(cycles=30, seeds=1, build_timeout_s=300, run_timeout_s=120)
