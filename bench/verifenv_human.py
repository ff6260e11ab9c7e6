"""Bench: the transfer scoreboard against the corpus's own human-written cocotb testbenches, on the same mutants.

    .venv/bin/python bench/verifenv_human.py --corpus verilog-axis [--match RE] [--mutants 6] [--out DIR]
                                             [--json FILE] [--human-timeout 900] [--hang-factor 4]

For every top of CORPUS/rtl with a testbench CORPUS/tb/<top>/test_<top>.py, both sides build the design with
the parameters of that testbench's Makefile (`export PARAM_...`; the testbenches assume them, e.g. tid and
tdest enabled): the generated environment is checked up to L5 with them (`bench.verifenv.one`, `-G`), so its
mutants are picked, and dead code skipped, for that configuration; where it shows L5, the human testbench runs
on the design as given and on each of those mutants (the mutated file in mutants/<id>/) with the same file
closure. A mutant is killed by the human testbench when one of its tests fails. The testbenches have no
simulation-time limits, so a mutant that stalls the design hangs them: a run longer than --hang-factor times
the run on the design as given (at least 60 s) is stopped and counted as a timeout, which, as in L5, is not a
kill (the table shows how many hung). The testbenches were written for cocotb
1.x; they are copied with the few renames cocotb 2 needs (`Clock(units=)` -> `unit=`, `.value.integer` and a
parameter's `dut.NAME.value` -> `int(...)`, `cocotb.SIM_NAME` -> `cocotb.is_simulation`, the cocotb-test import
dropped), nothing else.
Prints one line per top, the table (per top and medians, ours vs human) and the JSON figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.verifenv import one, top_modules  # noqa: E402
from verifenv import mutate, process  # noqa: E402
from verifenv.config import VerifEnvConfig  # noqa: E402

COCOTB2 = ((re.compile(r"^import cocotb_test\.simulator\s*$", re.MULTILINE), ""),
           (re.compile(r"\bunits="), "unit="),
           (re.compile(r"([\w.\[\]]+)\.value\.integer\b"), r"int(\1.value)"),
           # a parameter's value was an int under cocotb 1.x; cocotb 2 gives a LogicArray
           (re.compile(r"\b(dut\.[A-Z][A-Z0-9_]*)\.value\b"), r"int(\1.value)"),
           (re.compile(r"\bcocotb\.SIM_NAME\b"), "cocotb.is_simulation"))


def cocotb2(text: str) -> str:
    """A cocotb 1.x testbench with the renames cocotb 2 needs, and nothing else changed."""
    for pattern, repl in COCOTB2:
        text = pattern.sub(repl, text)
    return text


def makefile_params(makefile: Path) -> dict[str, str]:
    """The `export PARAM_X := ...` values of a testbench Makefile, as make evaluates them ($(shell ...) too)."""
    lines = [ln for ln in makefile.read_text(encoding="utf-8").splitlines() if re.match(r"\s*export PARAM_", ln)]
    script = "\n".join([*lines, "verifenv-params:",
                         "\t@echo $(foreach v,$(filter PARAM_%,$(.VARIABLES)),$(v)=$($(v)))", ""])
    out = subprocess.run(["make", "-s", "-f", "-", "verifenv-params"], input=script, capture_output=True,
                         text=True, check=True, cwd=makefile.parent).stdout
    return {k.removeprefix("PARAM_"): v for k, _, v in (item.partition("=") for item in out.split())}


def human_run(spec: dict) -> int:
    """Child process: build the sources with cocotb_tools.runner and run every test of the testbench module;
    0 all passed, 1 a test failed, 2 the build or the harness failed."""
    from cocotb_tools.runner import get_results, get_runner

    runner = get_runner("icarus")
    build = Path(spec["build_dir"])
    try:
        runner.build(sources=spec["sources"], hdl_toplevel=spec["top"], build_dir=build, parameters=spec["params"],
                     timescale=("1ns", "1ps"), always=True, log_file=build / "build.log")
    except (SystemExit, RuntimeError):
        return 2
    xml = build / "results.xml"
    xml.unlink(missing_ok=True)
    try:
        runner.test(test_module=spec["module"], hdl_toplevel=spec["top"], hdl_toplevel_lang="verilog",
                    build_dir=build, test_dir=spec["test_dir"], results_xml=str(xml), seed=1,
                    log_file=build / "sim.log", extra_env={"PYTHONPATH": spec["test_dir"]})
    except (SystemExit, RuntimeError):
        pass
    if not xml.exists():
        return 2
    total, failed = get_results(xml)
    return 2 if total == 0 else int(failed > 0)


def human_verdict(spec: dict, work: Path, timeout_s: float) -> tuple[str, float, str]:
    """(passed | failed | timeout | error, seconds, last lines) of one human testbench run in its own group."""
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps({**spec, "build_dir": str(work / "build")}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = process.run([sys.executable, __file__, "--child", str(spec_path)], work, env, timeout_s,
                         memory_limit_mb=4096)
    shutil.rmtree(work / "build", ignore_errors=True)
    verdict = {0: "passed", 1: "failed"}.get(result.returncode, "timeout" if result.timed_out else "error")  # type: ignore[arg-type]
    return verdict, result.seconds, result.tail(5)


def live_for(mutated: Path, original: Path, module: str, params: dict[str, str]) -> bool:
    """Whether a mutant is one the parameters leave alive: the same edit is among the module's candidates with
    those values (a mutant of code they switch off is equivalent there, and counts for no one)."""
    values: dict[str, int | None] = {}
    for name, text in params.items():
        try:
            values[name] = int(text, 0)
        except ValueError:
            values[name] = None
    src, want = original.read_bytes(), mutated.read_bytes()
    return any(mutate.apply(src, m) == want for m in mutate.candidates(src, module, values))


def compare(corpus: Path, top: str, out: Path, cfg: VerifEnvConfig, mutants: int, timeout_s: float,
            ours_at: str = "makefile", hang_factor: float = 4.0) -> dict:
    """Ours (the generated environment up to L5) and the human testbench on the same mutants, for one top;
    ours built with the testbench's parameters (`makefile`) or the RTL's defaults (`defaults`)."""
    tb_dir = corpus / "tb" / top
    params = makefile_params(tb_dir / "Makefile")
    ours_params = tuple(f"{k}={v}" for k, v in params.items()) if ours_at == "makefile" else ()
    row = one(corpus / "rtl", top, out / top, cfg, None, mutants, params=ours_params)
    row["params"] = params if ours_params else {}
    if "mutation_score" not in row:
        row["human"] = {"skipped": "no L5 of ours to compare with"}
        return row
    env = out / top
    human = out / "human" / top
    human.mkdir(parents=True, exist_ok=True)
    module = f"test_{top}"
    (human / f"{module}.py").write_text(cocotb2((tb_dir / f"{module}.py").read_text(encoding="utf-8")),
                                        encoding="utf-8")
    rtl = json.loads((env / "verifenv.json").read_text(encoding="utf-8"))["rtl"]
    spec = {"top": top, "module": module, "test_dir": str(human), "params": params}
    start = time.monotonic()
    verdict, seconds, tail = human_verdict({**spec, "sources": rtl}, human / "as_given", timeout_s)
    result: dict = {"as_given": verdict, "as_given_seconds": round(seconds, 1)}
    if verdict != "passed":
        result["detail"] = tail
        row["human"] = result
        return row
    mutant_timeout = min(timeout_s, max(60.0, hang_factor * seconds))
    report = json.loads((env / "reports" / "check.json").read_text(encoding="utf-8"))
    tally = {"killed": 0, "survived": 0, "timeout": 0, "error": 0}
    outcomes = []
    for m in report["mutants"]:
        if m["outcome"] not in ("killed", "survived", "timeout"):
            continue  # stillborn or a harness error on our side: not one of the mutants our score counts
        mutated = next((env / "mutants" / m["id"]).glob("*.v"))
        original = next(Path(p) for p in rtl if Path(p).name == mutated.name)
        module = m["id"].rpartition(".")[0] or top  # a wrapper's mutants are named module.mNNN
        live = live_for(mutated, original, module, params if module == top else {})
        sources = [str(mutated) if Path(p) == original else p for p in rtl]
        verdict, seconds, _tail = human_verdict({**spec, "sources": sources}, human / m["id"], mutant_timeout)
        outcome = {"failed": "killed", "passed": "survived"}.get(verdict, verdict)
        tally[outcome] += 1
        outcomes.append({"id": m["id"], "mutation": m["mutation"], "ours": m["outcome"], "human": outcome,
                         "live": live, "seconds": round(seconds, 1)})
    counted = tally["killed"] + tally["survived"] + tally["timeout"]
    both_live = [o for o in outcomes if o["live"] and o["human"] != "error"]
    result.update(tally, score=round(tally["killed"] / counted, 4) if counted else None, mutants=outcomes,
                  live=len(both_live), seconds=round(time.monotonic() - start, 1), hang_after_s=mutant_timeout,
                  score_live=_share([o["human"] for o in both_live]), ours_live=_share([o["ours"] for o in both_live]))
    row["human"] = result
    return row


def _hang_kills(human: dict) -> float | None:
    """The human testbench's score on the live mutants with a hang counted as a kill (a hung regression is a
    red one in CI)."""
    live = [o["human"] for o in human.get("mutants", []) if o["live"] and o["human"] != "error"]
    return round(sum(o in ("killed", "timeout") for o in live) / len(live), 4) if live else None


def _share(outcomes: list[str]) -> float | None:
    """killed / (killed + survived + timeout)."""
    counted = [o for o in outcomes if o in ("killed", "survived", "timeout")]
    return round(sum(o == "killed" for o in counted) / len(counted), 4) if counted else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def table(rows: list[dict]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0%}"

    lines = ["| top | mutants (live at the testbench's parameters) | ours (transfer scoreboard) | human cocotb "
             "testbench | human, a hang counted as a kill | ours s | human s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        h = r.get("human", {})
        n = sum(r.get("mutants", {}).get(k, 0) for k in ("killed", "survived", "timeout"))
        if h.get("score") is None:
            why = h.get("skipped") or f"testbench as given: {h.get('as_given')}"
            ours = f"{pct(r['mutation_score'])}" if "mutation_score" in r else f"n/a ({r.get('l3_detail', '')[:90]})"
            lines.append(f"| {r['top']} | {n} | {ours} | {why} | | {r['seconds']} | |")
            continue
        hung = f" ({h['timeout']} hung)" if h.get("timeout") else ""
        lines.append(f"| {r['top']} | {n} ({h['live']}) | {pct(h['ours_live'])} | {pct(h['score_live'])}{hung} | "
                     f"{pct(_hang_kills(h))} | {r['seconds']} | {h['seconds']} |")
    both = [r for r in rows if r.get("human", {}).get("score_live") is not None]
    lines.append(f"| **median** ({len(both)} tops) | | {pct(_median([r['human']['ours_live'] for r in both]))} | "
                 f"{pct(_median([r['human']['score_live'] for r in both]))} | "
                 f"{pct(_median([v for r in both if (v := _hang_kills(r['human'])) is not None]))} | "
                 f"{_median([r['seconds'] for r in both])} | {_median([r['human']['seconds'] for r in both])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a repository with rtl/ and tb/<top>/test_<top>.py")
    parser.add_argument("--match", default="", help="only tops whose name matches this regex")
    parser.add_argument("--mutants", type=int, default=6)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--human-timeout", type=float, default=900.0, help="seconds for one human testbench run")
    parser.add_argument("--hang-factor", type=float, default=4.0,
                        help="a mutant run longer than this times the run as given (at least 60 s) hung")
    parser.add_argument("--ours-at", choices=("makefile", "defaults"), default="makefile",
                        help="our environment's parameters: the testbench Makefile's (the same design as the "
                             "human testbench) or the RTL's defaults (then only mutants live at both count)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="run nothing: print the table of a --json")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return human_run(json.loads(args.child.read_text(encoding="utf-8")))
    if args.from_json is not None:
        print(table(json.loads(args.from_json.read_text(encoding="utf-8"))["rows"]))
        return 0
    corpus = args.corpus
    tops = [t for t in top_modules(corpus / "rtl", only_unused=False)
            if (corpus / "tb" / t / f"test_{t}.py").exists() and re.search(args.match, t)]
    cfg = VerifEnvConfig(cycles=args.cycles, seeds=args.seeds)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-verifenv-human-"))
    print(f"verifenv human-testbench bench: {len(tops)} top(s) with a testbench in {corpus / 'tb'}", flush=True)
    rows = []
    for i, top in enumerate(tops, 1):
        row = compare(corpus, top, work, cfg, args.mutants, args.human_timeout, args.ours_at, args.hang_factor)
        rows.append(row)
        if args.json:  # after every top: a long run stopped early keeps what it measured
            args.json.write_text(json.dumps({"corpus": str(corpus), "rows": rows}, indent=1))
        h = row.get("human", {})
        print(f"[{i}/{len(tops)}] {top:<26} ours {row.get('mutation_score', 'n/a')} {row.get('mutants', '')}  "
              f"human {h.get('score', h.get('skipped') or h.get('as_given'))} "
              f"({', '.join(m['id'] + ':' + m['human'] for m in h.get('mutants', []))})", flush=True)
    print(table(rows))
    both = [r for r in rows if r.get("human", {}).get("score_live") is not None]
    if args.json:
        args.json.write_text(json.dumps({"corpus": str(corpus), "rows": rows}, indent=1))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    figures = [{"figure": "median_mutation_score_stream_ours",
                "value": _median([r["human"]["ours_live"] for r in both])},
               {"figure": "median_mutation_score_stream_human",
                "value": _median([r["human"]["score_live"] for r in both])},
               {"figure": "tops_compared", "value": len(both)}]
    print(json.dumps({"name": "verifenv_human", "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
