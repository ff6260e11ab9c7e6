"""Run every benchmark in bench/ and write one table (markdown + JSON) of figures, targets and whether met.

Each bench script prints, as its last line of stdout, JSON of the form
{"name": ..., "figures": [{"figure": ..., "value": ..., "target": ..., "met": bool}]}. The README's numbers
come from the table this writes (bench/out/results.md and results.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("corpus", "train", "serve", "lsp", "verifenv", "gateway")


def run_one(name: str, extra: list[str], timeout: float) -> dict:
    script = HERE / f"{name}.py"
    if not script.is_file():
        return {"name": name, "error": f"{script.name} not found", "figures": []}
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(script), *extra], capture_output=True, text=True,
                              timeout=timeout, cwd=HERE.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout:.0f} s", "figures": []}
    seconds = time.monotonic() - start
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"name": name, "error": f"exit {proc.returncode}: " + " | ".join(tail), "figures": [],
                "seconds": round(seconds, 1)}
    result["seconds"] = round(seconds, 1)
    result["output"] = "\n".join(lines[:-1])
    return result


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def to_markdown(results: list[dict], when: str) -> str:
    rows = [f"Benchmarks run {when} on {machine()}.", "",
            "| bench | figure | value | target | met |", "| --- | --- | --- | --- | --- |"]
    for res in results:
        if res.get("error"):
            rows.append(f"| {res['name']} | (did not run) | {res['error']} | | no |")
            continue
        for fig in res["figures"]:
            value = fig["value"]
            value = f"{value:.3g}" if isinstance(value, float) else value
            met = "yes" if fig.get("met") else ("no" if fig.get("met") is False else "n/a")
            rows.append(f"| {res['name']} | {fig['figure']} | {value} | {fig.get('target', '')} | {met} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", choices=BENCHES, help="run only these benches")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="folder for results.md and results.json")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per bench")
    args = ap.parse_args(argv)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for name in args.only or BENCHES:
        print(f"== bench {name}", file=sys.stderr, flush=True)
        res = run_one(name, [], args.timeout)
        print(res.get("output", "") or res.get("error", ""), file=sys.stderr, flush=True)
        results.append(res)
    args.out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(results, when)
    (args.out / "results.md").write_text(md, encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps({"when": when, "machine": machine(), "results": [
        {k: v for k, v in r.items() if k != "output"} for r in results]}, indent=2) + "\n", encoding="utf-8")
    print(md)
    return 0 if all(not r.get("error") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
