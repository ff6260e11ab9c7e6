"""Bench for `inhouse verif-env`: over a folder of RTL, how many top modules get an environment that builds,
passes smoke, and shows a judging level (L3) and a mutation score (L5), and the seconds per top.

    .venv/bin/python bench/verifenv.py [--rtl tests/verifenv/rtl] [--models tests/verifenv/models] [--mutants 4]
    .venv/bin/python bench/verifenv.py --corpus DIR [--with DEP_DIR ...] [--limit N] [--match RE] [--exclude RE]
                                       [--mutants 4]

Without --corpus it runs the test fixtures, with the hand-written reference models of --models where a
`<top>_model.py` exists. With --corpus (a folder of public RTL, read through its Bender.yml / .core /
src_files.yml when it has one) every module with ports is a top (testbenches left out), and the folders of
--with (its dependencies, such as the repositories a Bender.yml names) join every file closure; designs without a model
are judged by the transfer scoreboard where they are stream-like. It prints one line per top (with an ETA),
then the table: tops tried, L1 builds, L2 smoke, L3 shown, L5 shown, median mutation score (all, and stream
designs), median seconds per top. The last stdout line is JSON: {"name": "verifenv", "figures": [...]}.
--json keeps every row, --plot draws levels and mutation scores (PNG); --from-json redraws saved runs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from verifenv import filelist, generate, interface, ladder  # noqa: E402
from verifenv import sim as simulators  # noqa: E402
from verifenv.config import VerifEnvConfig  # noqa: E402
from verifenv.report import MutantOutcome, Status  # noqa: E402

SECONDS_TARGET = {"icarus": 15.0, "verilator": 120.0}
_TESTBENCH = re.compile(r"(^|_)(tb|testbench|test|tests|bench)($|_)", re.IGNORECASE)


def top_modules(folder: Path, only_unused: bool = True) -> list[str]:
    """Modules with ports declared in the folder (its manifest's files when it has one), testbenches left out;
    with only_unused, just those no other module of the folder instantiates."""
    table = filelist.declarations(filelist.collect([folder]).files, ("module",))
    used: set[str] = set()
    with_ports: set[str] = set()
    for path in set(table.values()):
        for module in interface.parse_modules(path):
            used.update(module.instances)
            if module.ports:
                with_ports.add(module.name)
    return sorted(name for name in table if name in with_ports and not _TESTBENCH.search(name)
                  and not any(_TESTBENCH.search(part) for part in table[name].parent.parts[-2:])
                  and (not only_unused or name not in used))


def one(folder: Path, top: str, out: Path, cfg: VerifEnvConfig, models: Path | None, mutants: int,
        sim: str | None = None, deps: tuple[Path, ...] = (), params: tuple[str, ...] = ()) -> dict:
    """Generate and smoke-test one top (timed); then the full ladder with a model or a transfer scoreboard.
    `params` (NAME=VALUE) override the top's parameters in every build."""
    start = time.monotonic()
    row: dict = {"top": top, "sim": sim or "icarus", "built": False, "smoke": False, "claimed": "none",
                 "stream": False}
    try:
        fs = filelist.resolve([folder, *deps], top)
        iface = interface.extract(fs.files, top, fs.defines, fs.includes)
        language = "systemverilog" if any(f.endswith((".sv", ".svh")) for f in fs.files) else "verilog"
        sim = row["sim"] = sim or simulators.default_for(language)
        options = generate.GenerateOptions(sim=sim, cycles=cfg.cycles, reset_cycles=cfg.reset_cycles,
                                           parameters=params)
        generate.generate(iface, fs, out, options)
        stream_like = generate.tb_spec(iface, options)["stream"] is not None
        report = ladder.check(out, cfg, sim, top, upto="L2")
        row.update(claimed=report.claimed, built=report.status("L1") == Status.PASS,
                   smoke=report.status("L2") == Status.PASS,
                   detail=next((lv.detail for lv in report.levels
                                if lv.status not in (Status.PASS, Status.SKIP)), ""))
        model = models / f"{top}_model.py" if models else None
        has_model = model is not None and model.is_file()
        if row["smoke"] and (has_model or stream_like):
            if model is not None and has_model:
                shutil.copy(model, out / "tb" / "ref_model.py")
            full = ladder.check(out, cfg, sim, top, mutants=mutants, reuse_build=True, l5_needs_l3=True)
            row.update(claimed=full.claimed, l3=full.status("L3").value, l3_detail=full.levels[3].detail,
                       transfer_fields=full.levels[3].data.get("transfer_fields", []))
            row["stream"] = bool(row["transfer_fields"])  # stream-like and the transfer scoreboard applied
            l5 = full.levels[5]
            if "score" in l5.data:
                row["mutation_score"] = l5.data["score"]
                row["mutants"] = {k: l5.data[k] for k in ("killed", "survived", "timeout", "stillborn", "error")}
                row["survivors"] = [m.mutation for m in full.mutants if m.outcome == MutantOutcome.SURVIVED]
    except Exception as exc:  # the bench reports a module that breaks the generator instead of stopping
        row["detail"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = round(time.monotonic() - start, 2)
    return row


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarise(rows: list[dict]) -> dict:
    """The corpus table: counts and medians."""
    l5 = [r["mutation_score"] for r in rows if "mutation_score" in r]
    stream_l5 = [r["mutation_score"] for r in rows if "mutation_score" in r and r["stream"]]
    return {
        "tops": len(rows), "built": sum(r["built"] for r in rows), "smoke": sum(r["smoke"] for r in rows),
        "stream": sum(r["stream"] for r in rows), "l3_shown": sum(r.get("l3") == "pass" for r in rows),
        "l5_shown": len(l5), "median_mutation_score": _median(l5), "median_mutation_score_stream": _median(stream_l5),
        "median_seconds": _median([r["seconds"] for r in rows]),
    }


def table(name: str, summary: dict, sims: set[str]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0%}"

    n = summary["tops"] or 1
    header = ("| corpus | simulator | tops tried | L1 builds | L2 smoke | L3 shown (by transfer scoreboard) | "
              "L5 shown | median mutation score (stream designs) | median s per top |")
    row = (f"| {name} | {', '.join(sorted(sims))} | {summary['tops']} | {summary['built']} "
           f"({summary['built'] / n:.0%}) | {summary['smoke']} ({summary['smoke'] / n:.0%}) | "
           f"{summary['l3_shown']} ({summary['stream']}) | {summary['l5_shown']} | "
           f"{pct(summary['median_mutation_score'])} ({pct(summary['median_mutation_score_stream'])}) | "
           f"{summary['median_seconds']} |")
    return "\n".join([header, "|---|---|---|---|---|---|---|---|---|", row])


def plot(results: list[tuple[str, dict, list[dict]]], path: Path) -> None:
    """One PNG: per corpus, the tops reaching each level, and every mutation score shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (levels, scores) = plt.subplots(1, 2, figsize=(12, 4.5))
    keys = [("tops", "tried"), ("built", "L1 builds"), ("smoke", "L2 smoke"), ("l3_shown", "L3 shown"),
            ("l5_shown", "L5 shown")]
    width = 0.8 / max(1, len(results))
    for i, (name, summary, _rows) in enumerate(results):
        xs = [k + i * width for k in range(len(keys))]
        bars = levels.bar(xs, [summary[key] for key, _label in keys], width, label=name)
        levels.bar_label(bars, fontsize=8)
    levels.set_xticks([k + width * (len(results) - 1) / 2 for k in range(len(keys))], [lb for _k, lb in keys])
    levels.set_ylabel("tops")
    levels.set_title("tops reaching each level")
    levels.legend(fontsize=8)
    for i, (_name, _summary, rows) in enumerate(results):
        by_score: dict[float, list[str]] = {}
        for r in rows:
            if "mutation_score" in r:
                by_score.setdefault(r["mutation_score"], []).append(r["top"])
        scores.scatter([i] * len(by_score), [100 * v for v in by_score], s=[30 * len(t) for t in by_score.values()])
        for v, tops in by_score.items():
            scores.annotate("\n".join(tops), (i, 100 * v), fontsize=7, xytext=(8, 0), textcoords="offset points",
                            va="center")
    scores.axhline(80, color="grey", linestyle="--", linewidth=1)
    scores.set_xticks(range(len(results)), [name for name, _s, _r in results])
    scores.set_xlim(-0.5, len(results) - 0.3)
    scores.set_ylim(-5, 118)
    scores.set_ylabel("mutation score %")
    scores.set_title("L5 per top (transfer scoreboard, no model); target 80%")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_tops(folder: Path, tops: list[str], work: Path, cfg: VerifEnvConfig, models: Path | None, mutants: int,
             sim: str | None, deps: tuple[Path, ...] = ()) -> list[dict]:
    rows = []
    start = time.monotonic()
    for i, top in enumerate(tops, 1):
        row = one(folder, top, work / top, cfg, models, mutants, sim, deps)
        rows.append(row)
        elapsed = time.monotonic() - start
        eta = elapsed / i * (len(tops) - i)
        print(f"[{i}/{len(tops)} eta {eta / 60:4.1f} min] {top:<28} {row['sim']:<9} "
              f"L1={'ok' if row['built'] else 'FAIL':<4} L2={'ok' if row['smoke'] else 'FAIL':<4} "
              f"claimed={row['claimed']:<4} {row['seconds']:>6.1f}s"
              + (f"  mutation score {row['mutation_score']:.0%} {row['mutants']}" if "mutation_score" in row else "")
              + ("" if row["smoke"] else f"  {row.get('detail', '')[:160]}")
              + (f"  L3: {row['l3_detail'][:100]}" if row.get("l3") not in (None, "pass") else ""), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtl", type=Path, default=REPO / "tests" / "verifenv" / "rtl")
    parser.add_argument("--models", type=Path, default=REPO / "tests" / "verifenv" / "models")
    parser.add_argument("--corpus", type=Path, default=None, help="a folder of RTL: every module with ports is a top")
    parser.add_argument("--with", dest="deps", type=Path, action="append", default=[],
                        help="--corpus: a dependency folder joined to every file closure (repeatable)")
    parser.add_argument("--limit", type=int, default=0, help="--corpus: at most N tops, spread evenly over the list")
    parser.add_argument("--match", default="", help="--corpus: only tops whose name matches this regex")
    parser.add_argument("--exclude", default="", help="--corpus: leave out tops whose name matches this regex")
    parser.add_argument("--sim", choices=simulators.SIMULATORS, default=None, help="default: by language")
    parser.add_argument("--mutants", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the environments here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write every row and the summary here")
    parser.add_argument("--plot", type=Path, default=None, help="draw the levels and mutation scores as a PNG")
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="run nothing: draw --plot from the --json files of earlier runs")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = [json.loads(p.read_text(encoding="utf-8")) for p in args.from_json]
        plot([(Path(d["corpus"]).name, d["summary"], d["rows"]) for d in saved], args.plot or Path("verifenv.png"))
        return 0
    cfg = VerifEnvConfig(cycles=args.cycles, seeds=args.seeds)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-verifenv-"))
    if args.corpus is not None:
        folder, models = args.corpus, None
        tops = [t for t in top_modules(folder, only_unused=False)
                if re.search(args.match, t) and not (args.exclude and re.search(args.exclude, t))]
        if args.limit and len(tops) > args.limit:
            tops = [tops[int(i * len(tops) / args.limit)] for i in range(args.limit)]
    else:
        folder, models = args.rtl, args.models
        declared = set(filelist.declarations(filelist.collect([folder]).files))
        with_models = {p.stem.removesuffix("_model") for p in models.glob("*_model.py")} if models else set()
        tops = sorted(set(top_modules(folder)) | (with_models & declared))
    print(f"verifenv bench: {len(tops)} top(s) from {folder}", flush=True)
    rows = run_tops(folder, tops, work, cfg, models, args.mutants, args.sim, tuple(args.deps))
    summary = summarise(rows)
    print(table(folder.name if args.corpus else "fixtures", summary, {r["sim"] for r in rows}))
    if args.json:
        args.json.write_text(json.dumps({"corpus": str(folder), "summary": summary, "rows": rows}, indent=1))
    if args.plot:
        plot([(folder.name, summary, rows)], args.plot)
    figures = []
    for sim in sorted({r["sim"] for r in rows}):
        mine = [r for r in rows if r["sim"] == sim]
        share = sum(r["smoke"] for r in mine) / len(mine)
        secs = statistics.median(r["seconds"] for r in mine)
        target = 1.0 if sim == "icarus" else 0.95
        figures.append({"figure": f"smoke_share_{sim}", "value": round(share, 4), "target": target,
                        "met": share >= target})
        figures.append({"figure": f"median_seconds_per_top_{sim}", "value": round(secs, 2),
                        "target": SECONDS_TARGET[sim], "met": secs <= SECONDS_TARGET[sim]})
    stream = summary["median_mutation_score_stream"]
    if stream is not None:
        figures.append({"figure": "median_mutation_score_stream", "value": stream, "target": 0.8,
                        "met": stream >= 0.8})
    for r in rows:
        if "mutation_score" in r and args.corpus is None:
            figures.append({"figure": f"mutation_score_{r['top']}", "value": r["mutation_score"], "target": 0.8,
                            "met": r["mutation_score"] >= 0.8})
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"name": "verifenv", "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
