"""`inhouse verif-env`: RTL (or a Python module) in, a generated, optionally model-filled and checked environment out.

Stages: filelist.resolve -> interface.extract -> generate -> fill (--fill) -> ladder.check (--check).
Imports nothing heavy at module top; the stages load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from core.errors import ValidationError

if TYPE_CHECKING:
    from core.client import ClientConfig


def verif_env(
    ctx: typer.Context,
    rtl: list[Path] = typer.Argument(
        ..., help="RTL files, folders or .f file lists (or one .py module with --lang python)."),
    top: str | None = typer.Option(None, "--top", help="The top module (required for RTL)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for the environment."),
    sim: str | None = typer.Option(None, "--sim", help="icarus | verilator (default: by language)."),
    fill: bool = typer.Option(False, "--fill", help="Let the model fill the reference model, constraints, coverage."),
    check: bool = typer.Option(False, "--check", help="Climb the acceptance ladder; writes reports/check.json."),
    mutants: int | None = typer.Option(None, "--mutants", help="L5: number of RTL mutants."),
    max_repair: int | None = typer.Option(None, "--max-repair", help="--fill repair rounds."),
    force: bool = typer.Option(False, "--force",
                               help="Overwrite owned files (reference model, constraints, coverage)."),
    lang: str | None = typer.Option(None, "--lang", help="verilog | systemverilog | python (default: by extension)."),
    backend_url: str | None = typer.Option(None, "--backend-url", help="TGI-compatible completion server for --fill."),
    pyuvm: bool = typer.Option(False, "--pyuvm", help="Also generate a pyuvm version of the environment."),
    seeds: int | None = typer.Option(None, "--seeds", help="L3: scoreboard seeds."),
    cycles: int | None = typer.Option(None, "--cycles", help="Random-stimulus cycles per test."),
    define: list[str] = typer.Option([], "--define", "-D", help="Macros defined for the build (repeatable)."),
    param: list[str] = typer.Option([], "--param", "-G",
                                    help="NAME=VALUE: a top parameter for every build (repeatable)."),
) -> None:
    """Generate a cocotb verification environment for an RTL top module (or a pytest suite for a Python module)."""
    from core.artifacts import run_metadata
    from core.client import ClientConfig
    from core.config import resolve_section
    from verifenv.config import VerifEnvConfig

    cfg = resolve_section(ctx.obj, VerifEnvConfig, sim=sim, mutants=mutants, max_repair=max_repair, seeds=seeds,
                          cycles=cycles)
    client = resolve_section(ctx.obj, ClientConfig, url=backend_url) if fill else None
    if lang not in (None, "verilog", "systemverilog", "python"):
        raise ValidationError(f"`--lang` must be one of verilog, systemverilog, python, got {lang!r}")
    if lang == "python" or (lang is None and len(rtl) == 1 and rtl[0].suffix == ".py"):
        from verifenv import python_twin

        result = python_twin.run(rtl, out, cfg, fill=fill, client=client, force=force)
        typer.echo(result.summary())
        return
    if not top:
        raise ValidationError("`--top` is required for RTL (the module the environment is built around)")
    code = run_rtl(rtl, top, out, cfg, fill=fill, check=check, force=force, lang=lang, client=client,
                   pyuvm=pyuvm, defines=tuple(define), parameters=tuple(param), metadata=run_metadata())
    if code:
        raise typer.Exit(code)


def run_rtl(rtl: list[Path], top: str, out: Path, cfg, *, fill: bool = False, check: bool = False, force: bool = False,
            lang: str | None = None, client: ClientConfig | None = None, pyuvm: bool = False,
            defines: tuple[str, ...] = (), parameters: tuple[str, ...] = (), metadata: dict | None = None) -> int:
    """The RTL flow; returns the exit code (1 when --check shows the environment does not pass smoke)."""
    from verifenv import filelist, generate, interface, ladder
    from verifenv import sim as simulators
    from verifenv.report import Status

    fileset = filelist.resolve(rtl, top)
    all_defines = tuple(dict.fromkeys(fileset.defines + defines))
    iface = interface.extract(fileset.files, top, all_defines, fileset.includes)
    language = lang or ("systemverilog" if any(Path(f).suffix in (".sv", ".svh") for f in fileset.files)
                        else iface.language)
    chosen = simulators.check_name(cfg.sim or simulators.default_for(language))
    options = generate.GenerateOptions(sim=chosen, cycles=cfg.cycles, reset_cycles=cfg.reset_cycles,
                                       period_ns=cfg.period_ns, force=force, pyuvm=pyuvm, defines=all_defines,
                                       parameters=parameters)
    result = generate.generate(iface, fileset, out, options, metadata=metadata)
    typer.echo(f"verif-env: {top} -> {out} ({chosen}); wrote {len(result.written)} file(s)"
               + (f", kept owned {', '.join(result.kept)} (use --force to overwrite)" if result.kept else ""))
    if fileset.missing:
        typer.echo(f"verif-env: modules instantiated but not found: {', '.join(fileset.missing)}", err=True)
    if fileset.unresolved_includes:
        typer.echo(f"verif-env: included files found nowhere: {', '.join(fileset.unresolved_includes)} "
                   "(give their folder with +incdir+ in a .f list)", err=True)
    for note in iface.disagreements:
        typer.echo(f"verif-env: {note}", err=True)
    report = None
    if fill:
        from verifenv import fill as filler

        outcome = filler.fill(out, iface, cfg, chosen, client=client, mutants=cfg.mutants if check else 0,
                             force=force)
        typer.echo(outcome.summary())
        report = outcome.report
    if check and report is None:
        report = ladder.check(out, cfg, chosen, top, mutants=cfg.mutants)
    if report is not None:
        typer.echo(report.table())
        if report.status("L2") != Status.PASS:
            return 1
    return 0
