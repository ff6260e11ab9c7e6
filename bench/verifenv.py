"""Bench for `inhouse verif-env`: over a folder of RTL, the share of top modules whose generated environment
builds and passes smoke, per simulator, and seconds per module; with hand-written reference models
(`<top>_model.py` in --models), the L3 verdict and the L5 mutation score.

    .venv/bin/python bench/verifenv.py [--rtl tests/verifenv/rtl] [--models tests/verifenv/models] [--mutants 4]

The last stdout line is JSON: {"name": "verifenv", "figures": [{"figure", "value", "target", "met"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from verifenv import filelist, generate, interface, ladder  # noqa: E402
from verifenv import sim as simulators  # noqa: E402
from verifenv.config import VerifEnvConfig  # noqa: E402

SECONDS_TARGET = {"icarus": 15.0, "verilator": 120.0}


def top_modules(folder: Path) -> list[str]:
    """Modules declared in the folder that no other module of the folder instantiates."""
    table = filelist.declarations(filelist.collect([folder]).files)
    used: set[str] = set()
    for path in set(table.values()):
        for module in interface.parse_modules(path):
            used.update(module.instances)
    return sorted(name for name in table if name not in used)


def one(folder: Path, top: str, out: Path, cfg: VerifEnvConfig, models: Path | None, mutants: int) -> dict:
    """Generate and smoke-test one top (timed); with a hand-written model, the full ladder after it."""
    start = time.monotonic()
    row: dict = {"top": top, "sim": "icarus", "smoke": False, "claimed": "none"}
    try:
        fs = filelist.resolve([folder], top)
        iface = interface.extract(fs.files, top)
        language = "systemverilog" if any(f.endswith((".sv", ".svh")) for f in fs.files) else "verilog"
        sim = row["sim"] = simulators.default_for(language)
        generate.generate(iface, fs, out, generate.GenerateOptions(sim=sim, cycles=cfg.cycles))
        report = ladder.check(out, cfg, sim, top, upto="L2")
        row.update(claimed=report.claimed, smoke=report.status("L2") == "pass",
                   detail=next((lv.detail for lv in report.levels if lv.status not in ("pass", "skip")), ""))
        row["seconds"] = round(time.monotonic() - start, 2)
        model = models / f"{top}_model.py" if models else None
        if row["smoke"] and model is not None and model.is_file():
            shutil.copy(model, out / "tb" / "ref_model.py")
            full = ladder.check(out, cfg, sim, top, mutants=mutants, reuse_build=True)
            row.update(claimed=full.claimed, l3=full.status("L3"))
            l5 = full.levels[5]
            if "score" in l5.data:
                row["mutation_score"] = l5.data["score"]
                row["mutants"] = {k: l5.data[k] for k in ("killed", "survived", "timeout", "stillborn", "error")}
            row["ladder_seconds"] = round(time.monotonic() - start - row["seconds"], 2)
    except Exception as exc:  # the bench reports a module that breaks the generator instead of stopping
        row["detail"] = f"{type(exc).__name__}: {exc}"
    row.setdefault("seconds", round(time.monotonic() - start, 2))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtl", type=Path, default=REPO / "tests" / "verifenv" / "rtl")
    parser.add_argument("--models", type=Path, default=REPO / "tests" / "verifenv" / "models")
    parser.add_argument("--mutants", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the environments here (default: a temp dir)")
    args = parser.parse_args(argv)
    cfg = VerifEnvConfig(cycles=args.cycles, seeds=args.seeds)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-verifenv-"))
    rows = []
    declared = set(filelist.declarations(filelist.collect([args.rtl]).files))
    with_models = {p.stem.removesuffix("_model") for p in args.models.glob("*_model.py")} if args.models else set()
    for top in sorted(set(top_modules(args.rtl)) | (with_models & declared)):
        row = one(args.rtl, top, work / top, cfg, args.models, args.mutants)
        rows.append(row)
        print(f"{top:<16} {row['sim']:<10} smoke={'ok ' if row['smoke'] else 'FAIL'} "
              f"claimed={row['claimed']:<5} {row['seconds']:>7.1f}s"
              + (f"  mutation score {row['mutation_score']:.0%} ({row['mutants']}, ladder {row['ladder_seconds']:.0f}s)"
                 if "mutation_score" in row else "")
              + ("" if row["smoke"] else f"  {row.get('detail', '')[:120]}"), flush=True)
    figures = []
    for sim in sorted({r["sim"] for r in rows}):
        mine = [r for r in rows if r["sim"] == sim]
        share = sum(r["smoke"] for r in mine) / len(mine)
        secs = sum(r["seconds"] for r in mine) / len(mine)  # generate + L0..L2, per module
        figures.append({"figure": f"smoke_share_{sim}", "value": round(share, 4), "target": 1.0, "met": share >= 1.0})
        figures.append({"figure": f"seconds_per_module_{sim}", "value": round(secs, 2),
                        "target": SECONDS_TARGET[sim], "met": secs <= SECONDS_TARGET[sim]})
    for r in rows:
        if "mutation_score" in r:
            figures.append({"figure": f"mutation_score_{r['top']}", "value": r["mutation_score"], "target": 0.8,
                            "met": r["mutation_score"] >= 0.8})
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"name": "verifenv", "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
