"""The acceptance ladder (`--check`): what a generated environment has shown, level by level.

L0 well-formed code, L1 builds, L2 smoke (reset, no X, no DUT assertion, no hang), L3 the scoreboard agrees
with the RTL over several seeds, L4 coverage, L5 RTL mutation score. Each level runs the environment's own
pytest runner in a subprocess (process group killed on a wall-clock timeout) and reads the JSON the tests
write. The report (report.py) is written to reports/check.json and reports/check.txt; `claimed` is the highest
level with all below it passed. pytest exit codes 2-5 are harness errors, never a killed mutant.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

from core.artifacts import write_json_atomic
from verifenv import mutate, process
from verifenv import sim as simulators
from verifenv.config import VerifEnvConfig
from verifenv.filelist import declarations
from verifenv.report import Level, MutantOutcome, MutantResult, Report, Status, write_report

log = logging.getLogger(__name__)

LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")
NAMES = {"L0": "well-formed", "L1": "builds", "L2": "smoke", "L3": "scoreboard", "L4": "coverage", "L5": "mutants"}
_REQUIRED = {"tb/ref_model.py": ("Model",), "tb/constraints.py": ("constrain",), "tb/coverage_points.py": ("POINTS",)}


class Runner:
    """Runs the environment's pytest runner with the simulator's environment."""

    def __init__(self, out_dir: Path, sim: str, cfg: VerifEnvConfig) -> None:
        self.out_dir = out_dir
        self.sim = sim
        self.cfg = cfg

    def pytest(self, select: str, timeout_s: float, **env: str) -> process.RunResult:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("PYTEST_", "COCOTB_", "VERIFENV_"))}
        full = simulators.environment(self.sim, base)
        full.update({"VERIFENV_SIM": self.sim, "VERIFENV_CYCLES": str(self.cfg.cycles), "PYTHONDONTWRITEBYTECODE": "1",
                     "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})  # the runner needs no plugin; each costs start-up
        if self.sim == "verilator" and self.cfg.verilator_coverage and "VERIFENV_RTL" not in env:
            full["VERIFENV_COVERAGE"] = "1"  # line and toggle points in coverage.dat (mutants build without)
        full.update(env)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "tb/test_runner.py", "-k", select]
        return process.run(cmd, self.out_dir, full, timeout_s, self.cfg.memory_limit_mb)


def _describe(result: process.RunResult) -> str:
    if result.timed_out:
        return f"wall-clock timeout after {result.seconds:.0f}s (process group killed)"
    if result.harness_error:
        return f"harness error (pytest exit {result.returncode}): {_last_error(result.output)}"
    return _last_error(result.output)


def _last_error(output: str) -> str:
    """The most telling line of a failed pytest run: the assertion message, else the summary line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for pick in (lambda ln: ln.startswith("E ") and "Error:" in ln, lambda ln: ln.startswith("E "),
                 lambda ln: ln.startswith("FAILED"), lambda ln: "rror" in ln):
        hits = [ln for ln in lines if pick(ln)]
        if hits:
            return hits[0].removeprefix("E").strip()[:400]
    return lines[-1][:300] if lines else "no output"


def level0(out_dir: Path) -> Level:
    problems = []
    for path in sorted((out_dir / "tb").glob("*.py")):
        rel = str(path.relative_to(out_dir))
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except SyntaxError as exc:
            problems.append(f"{rel}:{exc.lineno}: {exc.msg}")
            continue
        names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for required in _REQUIRED.get(rel, ()):
            if required not in names:
                problems.append(f"{rel}: `{required}` is not defined")
    return Level("L0", NAMES["L0"], Status.FAIL if problems else Status.PASS,
                 "; ".join(problems) or "all tb/*.py parse")


def _read_reports(folder: Path, prefix: str) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob(f"{prefix}_seed*.json"))]


def check(out_dir: str | Path, cfg: VerifEnvConfig, sim: str, top: str, mutants: int = 0,
          seeds: int | None = None, write: bool = True, reuse_build: bool = False,
          upto: str = "L5", l5_needs_l3: bool = False) -> Report:
    """Climb the ladder for the environment in out_dir; later levels are skipped when L0-L2 fail. With
    l5_needs_l3 (the bench), mutants run only where L3 judged behaviour: smoke alone kills few."""
    out_dir = Path(out_dir)
    report = Report(top=top, sim=sim)
    runner = Runner(out_dir, sim, cfg)
    sim_reports = out_dir / "reports" / "sim"
    shutil.rmtree(sim_reports, ignore_errors=True)
    seeds = seeds or cfg.seeds

    def add(level: Level) -> Level:
        report.levels.append(level)
        log.info("%s %s: %s %s", level.level, level.name, level.status.value, level.detail)
        return level

    def skip_rest(after: str, why: str) -> None:
        for lv in LEVELS[LEVELS.index(after) + 1:]:
            add(Level(lv, NAMES[lv], Status.SKIP, why))

    start = time.monotonic()
    l0 = level0(out_dir)
    l0.seconds = time.monotonic() - start
    if add(l0).status != Status.PASS:
        skip_rest("L0", "L0 failed")
        return write_report(report, out_dir, write)
    missing = simulators.unavailable(sim)
    if missing:
        add(Level("L1", NAMES["L1"], Status.ERROR, missing))
        skip_rest("L1", "no simulator")
        return write_report(report, out_dir, write)

    result = runner.pytest("test_build", cfg.build_timeout_s, **({"VERIFENV_REUSE_BUILD": "1"} if reuse_build else {}))
    if add(build_level(result, out_dir, sim)).status != Status.PASS:
        skip_rest("L1", "L1 failed")
        return write_report(report, out_dir, write)

    smoke_dir = sim_reports / "L2"
    result = runner.pytest("test_reset or test_random", cfg.run_timeout_s, VERIFENV_SEED="1",
                           VERIFENV_REPORT_DIR=str(smoke_dir))
    detail = f"reset, X/Z and {cfg.cycles} random cycles passed" if result.returncode == 0 else _describe(result)
    if add(Level("L2", NAMES["L2"], _status(result), detail, result.seconds)).status != Status.PASS:
        skip_rest("L2", "L2 failed")
        return write_report(report, out_dir, write)

    dat = out_dir / "sim_build" / sim / "coverage.dat"
    if sim == "verilator" and dat.exists():
        shutil.copy(dat, smoke_dir / "coverage.dat")
    if upto == "L2":
        skip_rest("L2", "not part of this check")
        return write_report(report, out_dir, write)
    stream = _manifest(out_dir).get("stream")
    add(level3(runner, sim_reports / "L3", seeds, stream))
    add(level4(smoke_dir, cfg))
    if upto != "L5":
        add(Level("L5", NAMES["L5"], Status.SKIP, "not part of this check"))
    elif mutants > 0:
        if report.status("L3") == Status.FAIL:
            add(Level("L5", NAMES["L5"], Status.SKIP, "L3 failed: the scoreboard disagrees with the unmutated RTL"))
        elif l5_needs_l3 and report.status("L3") != Status.PASS:
            add(Level("L5", NAMES["L5"], Status.SKIP, "L3 showed nothing to judge mutants with"))
        else:
            add(level5(runner, out_dir, top, mutants, report))
    else:
        add(Level("L5", NAMES["L5"], Status.SKIP, "not requested (--mutants N)"))
    return write_report(report, out_dir, write)


_COMPILER_ERROR = re.compile(r"(%Error|error:|: error|syntax error|Unknown module|not found|I give up)", re.IGNORECASE)


def build_level(result: process.RunResult, out_dir: Path, sim: str) -> Level:
    """L1; a failed build shows the compiler's first error lines (from build.log) and the file list it used."""
    if result.returncode == 0:
        return Level("L1", NAMES["L1"], Status.PASS, "built", result.seconds)
    log_path = out_dir / "sim_build" / sim / "build.log"
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.exists() else []
    errors = [ln.strip() for ln in lines if _COMPILER_ERROR.search(ln) and "Exiting due to" not in ln][:5]
    try:
        files = json.loads((out_dir / "verifenv.json").read_text(encoding="utf-8"))["rtl"]
    except (OSError, ValueError, KeyError):
        files = []
    detail = (f"compiler: {' | '.join(errors[:3])}" if errors else _describe(result))
    detail += f"; file list ({len(files)}): {', '.join(Path(f).name for f in files)}"
    return Level("L1", NAMES["L1"], _status(result), detail[:900], result.seconds,
                 {"errors": errors, "files": files, "log": str(log_path)})


def _status(result: process.RunResult) -> Status:
    if result.returncode == 0:
        return Status.PASS
    return Status.ERROR if result.timed_out or result.harness_error else Status.FAIL


def _learn_once(runner: Runner, folder: Path, hold_low: str = "") -> tuple[process.RunResult, dict | None, dict]:
    result = runner.pytest("test_scoreboard or test_axis_frames", runner.cfg.run_timeout_s, VERIFENV_SEED="1",
                           VERIFENV_REPORT_DIR=str(folder), VERIFENV_TRANSFER_LEARN="1", VERIFENV_HOLD_LOW=hold_low)
    board = next((r.get("transfers") for r in _read_reports(folder, "scoreboard") if r.get("seed") == 1), None)
    frames = next((r for r in _read_reports(folder, "axis_frames") if r.get("seed") == 1), {})
    return result, board, frames


def learn_transfer_fields(runner: Runner, folder: Path) -> tuple[list[str], str]:
    """Seed 1 on the design as given, every shared field compared: the fields that agreed on every transfer
    are judged from then on (tb/transfer_fields.json, read by the mutant runs too). A design that loses
    transfers gets a second run with tuser held at 0 (a frame FIFO drops frames marked bad); when that one
    loses none, tuser stays at 0 while the scoreboard judges (`hold_low`). Returns (fields, why not)."""
    path = runner.out_dir / "tb" / "transfer_fields.json"
    path.unlink(missing_ok=True)
    result, board, frames = _learn_once(runner, folder)
    hold_low: list[str] = []
    if board and board["lost"] and not board["made_up"] and "user" in board["field_agree"]:
        _result, held, held_frames = _learn_once(runner, folder / "user_low", "user")
        if held and held["out"] and not held["lost"] and not held["made_up"]:
            board, frames, hold_low = held, held_frames, ["user"]
    axis_ok = not frames.get("applicable") or (frames.get("done") and not frames.get("problems"))
    fields: list[str] = []
    if not board:
        why = f"the learning run wrote no transfer report ({_describe(result)})"
    elif board["out"] == 0:
        why = f"no transfer came out ({board['in']} accepted in)"
    elif board["made_up"]:
        why = f"{board['made_up']} output transfer(s) matched no input transfer (the design makes data up)"
    elif board["lost"]:
        why = f"{board['lost']} of {board['in']} accepted transfer(s) never came out (the design drops or holds data)"
    else:
        fields = [f for f, n in board["field_agree"].items() if n == board["out"]]
        first = next(iter(board["field_agree"]), "")
        why = "" if first in fields else f"field {first!r} is transformed, not carried (agreed on " \
                                         f"{board['field_agree'].get(first, 0)}/{board['out']} transfers)"
        if why:
            fields = []
    write_json_atomic(path, {"fields": fields, "learned": board or {}, "not_applicable": why,
                             "axis_frames": bool(axis_ok), "hold_low": hold_low})
    return fields, why


def level3(runner: Runner, folder: Path, seeds: int, stream: dict | None = None) -> Level:
    total = 0.0
    compared = 0
    transfers = 0
    frames = 0  # AXI-Stream frames through cocotbext-axi's source and sink
    fields: list[str] = []
    why_not = ""
    if stream:
        start = time.monotonic()
        fields, why_not = learn_transfer_fields(runner, folder / "learn")
        total += time.monotonic() - start
    for seed in range(1, seeds + 1):
        result = runner.pytest("test_scoreboard or test_axis_frames", runner.cfg.run_timeout_s,
                               VERIFENV_SEED=str(seed), VERIFENV_REPORT_DIR=str(folder))
        total += result.seconds
        board = next((r for r in _read_reports(folder, "scoreboard") if r.get("seed") == seed), None)
        if result.returncode != 0:
            detail = f"seed {seed}: "
            if board and board.get("mismatches"):
                detail += f"{board['mismatch_count']} mismatch(es); first: {board['mismatches'][0]}"
            else:
                detail += _describe(result)
            return Level("L3", NAMES["L3"], _status(result), detail[:500], total,
                         {"seed": seed, "compared": board.get("compared", 0) if board else 0})
        compared += board.get("compared", 0) if board else 0
        transfers += ((board or {}).get("transfers") or {}).get("matched", 0) if fields else 0
        frames += sum(r.get("frames", 0) for r in _read_reports(folder, "axis_frames")
                      if r.get("seed") == seed and r.get("applicable"))
    data = {"compared": compared, "seeds": seeds, "transfers": transfers, "transfer_fields": fields,
            "axis_frames": frames}
    if why_not:
        data["transfer_scoreboard"] = f"not applicable: {why_not}"
    if compared == 0 and transfers == 0:
        detail = "the reference model returned no values to compare"
        if stream:
            detail += f"; transfer scoreboard not applicable: {why_not}"
        return Level("L3", NAMES["L3"], Status.NOT_SHOWN, detail, total, data)
    parts = []
    if compared:
        parts.append(f"{compared} model values agreed")
    if transfers:
        parts.append(f"{transfers} transfers came out in order (fields {', '.join(fields)})")
    if frames:
        parts.append(f"{frames} AXI-Stream frames through cocotbext-axi came out unchanged")
    held = _transfer_fields(runner.out_dir).get("hold_low") if fields else None
    if held:
        parts.append(f"{', '.join(held)} held at 0 (with it random, the design dropped transfers)")
    return Level("L3", NAMES["L3"], Status.PASS, f"{'; '.join(parts)} over {seeds} seed(s)", total, data)


def level4(folder: Path, cfg: VerifEnvConfig) -> Level:
    reports = _read_reports(folder, "coverage")
    if not reports:
        return Level("L4", NAMES["L4"], Status.ERROR, "no coverage report was written")
    cov = reports[0]
    points = cov.get("points", {})
    unhit = sorted(name for name, hits in points.items() if not hits)
    toggle = cov.get("toggle", 0.0)
    ok = toggle >= cfg.min_toggle and not unhit
    detail = f"toggle {toggle:.0%} (bar {cfg.min_toggle:.0%}); points {len(points) - len(unhit)}/{len(points)} hit"
    if unhit:
        detail += f"; never hit: {', '.join(unhit[:5])}"
    if not points:
        detail += " (no coverage points defined)"
    if cov.get("functional_percent") is not None:
        detail += f"; handshake states {cov['functional_percent']:.0f}% (cocotb-coverage)"
    dat = folder / "coverage.dat"
    if dat.exists():
        from verifenv.coverage import summary

        cov = {**cov, "verilator": summary(dat)}
        detail += "; verilator " + ", ".join(f"{kind} {v['share']:.0%} of {v['points']}"
                                              for kind, v in cov["verilator"].items())
    return Level("L4", NAMES["L4"], Status.PASS if ok else Status.FAIL, detail, 0.0, cov)


def _file_list_options(out_dir: Path) -> tuple[list[str], list[str]]:
    """Include folders and defines from the environment's rtl.f."""
    includes, defines = [], []
    path = out_dir / "rtl.f"
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        if line.startswith("+incdir+"):
            includes.append(line[8:])
        elif line.startswith("+define+"):
            defines.append(line[8:])
    return includes, defines


def _params(out_dir: Path) -> dict[str, int | None]:
    """The elaborated parameter values from interface.json with the build's overrides (-G) over them (mutants
    skip code they switch off)."""
    try:
        data = json.loads((out_dir / "interface.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    values = {p["name"]: p["value"] for p in data.get("params", ()) if p.get("value") is not None}
    for text in _manifest(out_dir).get("options", {}).get("parameters", ()):
        name, _, value = text.partition("=")
        try:
            values[name] = int(value, 0)
        except ValueError:
            values.pop(name, None)  # not a number: unknown, so no code is skipped on its account
    return values


def _transfer_fields(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / "tb" / "transfer_fields.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / "verifenv.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pick_mutants(rtl: list[Path], top: str, count: int, params: dict,
                  out_dir: Path | None = None) -> list[tuple[Path, mutate.Mutant]]:
    """Mutants of the top module; a wrapper with fewer live ones than asked gets the rest from the modules it
    instantiates, with each instance's parameter values from pyslang where it elaborates (code they switch off
    is skipped; modules no instance uses are left alone), else with none skipped."""
    table = declarations(rtl)
    top_file = table.get(top, rtl[-1])
    chosen = [(top_file, m) for m in mutate.mutants(top_file, top, count, params)]
    if len(chosen) < count:
        from verifenv.elaborate import instance_parameters

        includes, defines = _file_list_options(out_dir) if out_dir is not None else ([], [])
        overrides = _manifest(out_dir).get("options", {}).get("parameters", ()) if out_dir is not None else ()
        sub = instance_parameters([str(p) for p in rtl], top, defines, includes, overrides)
        pool = [(path, dataclasses.replace(m, id=f"{name}.{m.id}"))
                for name, path in table.items() if name != top and path != top_file and (not sub or name in sub)
                for m in mutate.candidates(path.read_bytes(), name, sub.get(name))]
        need = min(count - len(chosen), len(pool))
        chosen += [pool[int(i * len(pool) / need)] for i in range(need)] if need else []
    return chosen


def level5(runner: Runner, out_dir: Path, top: str, count: int, report: Report) -> Level:
    manifest = json.loads((out_dir / "verifenv.json").read_text(encoding="utf-8"))
    rtl = [Path(p) for p in manifest["rtl"]]
    chosen = _pick_mutants(rtl, top, count, _params(out_dir), out_dir)
    if not chosen:
        return Level("L5", NAMES["L5"], Status.NOT_SHOWN, "no mutable operators, constants or conditions found")
    start = time.monotonic()
    tally = {o.value: 0 for o in MutantOutcome}
    for target, m in chosen:
        folder = out_dir / "mutants" / m.id
        folder.mkdir(parents=True, exist_ok=True)
        mutated = folder / target.name
        mutated.write_bytes(mutate.apply(target.read_bytes(), m))
        sources = os.pathsep.join(str(mutated if p == target else p) for p in rtl)
        env = {"VERIFENV_RTL": sources, "VERIFENV_BUILD_DIR": str(out_dir / "sim_build" / "mutants" / m.id),
               "VERIFENV_SEED": "1", "VERIFENV_REPORT_DIR": str(folder / "reports")}
        build = runner.pytest("test_build", runner.cfg.build_timeout_s, **env)
        if build.returncode != 0:
            outcome = MutantOutcome.STILLBORN if build.returncode == 1 else MutantOutcome.ERROR
            why = _describe(build)
        else:
            run = runner.pytest("test_random or test_scoreboard or test_axis_frames", runner.cfg.run_timeout_s, **env)
            if run.timed_out:
                outcome, why = MutantOutcome.TIMEOUT, _describe(run)
            elif run.harness_error:
                outcome, why = MutantOutcome.ERROR, _describe(run)  # never counted as killed
            else:
                outcome = MutantOutcome.KILLED if run.returncode == process.PYTEST_FAILED else MutantOutcome.SURVIVED
                why = _kill_reason(folder / "reports", run) if outcome == MutantOutcome.KILLED else "all tests passed"
        tally[outcome.value] += 1
        where = "" if target == rtl[-1] else f"{target.name} "
        report.mutants.append(MutantResult(m.id, where + m.description, outcome, why[:300]))
        shutil.rmtree(out_dir / "sim_build" / "mutants" / m.id, ignore_errors=True)
    counted = tally["killed"] + tally["survived"] + tally["timeout"]
    score = tally["killed"] / counted if counted else 0.0
    survivors = [m.mutation for m in report.mutants if m.outcome == MutantOutcome.SURVIVED]
    detail = (f"score {score:.0%} ({tally['killed']} killed / {counted}); survived {tally['survived']}, "
              f"timeout {tally['timeout']}, stillborn {tally['stillborn']}, harness errors {tally['error']}")
    if survivors:
        detail += f"; survivors: {'; '.join(survivors[:3])}"
    status = (Status.NOT_SHOWN if counted == 0
              else Status.PASS if score >= runner.cfg.min_mutation_score else Status.FAIL)
    return Level("L5", NAMES["L5"], status, detail, time.monotonic() - start, {**tally, "score": round(score, 4)})


def _kill_reason(folder: Path, run: process.RunResult) -> str:
    board = next(iter(_read_reports(folder, "scoreboard")), None)
    if board and board.get("mismatches"):
        return f"scoreboard: {board['mismatches'][0]}"
    return _last_error(run.output)
