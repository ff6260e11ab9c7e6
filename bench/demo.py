"""`make demo`: the main job end to end on the embedded default model, on a CPU machine.

model → a real repository nobody here wrote (a PyPI sdist) → corpus → LoRA training within a budget → the exam
(base vs tuned) → the embedded server with the adapter → a completion through the language server in a
held-out file → a verification environment for a small RTL module. Every artifact lands in one folder; every
process it starts is stopped. Each step runs the `inhouse` CLI a user would run.

By default the budgets are small (`make demo`, about 6 minutes): enough to show that the chain works, too small to
show a gain, which the demo says, printing the full budget's recorded results beside its own (`make demo FULL=1`,
`--full`, about 25 minutes, reproduces the first of them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
COMPANY_REPO = "a2a-sdk==1.3.0"  # first published in 2025, after SmolLM2's training data was collected

# The exam needs enough held-out rows: a larger eval share and more cursors per held-out file than the
# defaults (which suit a company's many repositories), written as the inhouse.toml a user would write.
DEMO_CONFIG = """\
[corpus]
eval_fraction = 0.18
dev_fraction = 0.04
eval_examples_per_file = 30
max_examples_per_file = 24
"""

DEMO_RTL = """\
// An 8-bit counter with enable and asynchronous active-low reset (the demo's RTL block).
module counter #(parameter WIDTH = 8) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire             en,
    output reg  [WIDTH-1:0] count
);
  always @(posedge clk or negedge rst_n) begin
    if (!rst_n) count <= {WIDTH{1'b0}};
    else if (en) count <= count + 1'b1;
  end
endmodule
"""


@dataclass
class Budget:
    train_minutes: float
    eval_limit: int
    eval_modes: str          # every prompting mode of the base in the full demo
    tuned_modes: str
    max_prompt_tokens: int
    estimates: dict[str, float]


# Sized for a 2-core CPU: the whole chain in about 25 minutes (QUICK, the default: about 6). The headline exam (400
# rows, half an hour of training) is `bench/headline.sh`, not the demo.
FULL = Budget(train_minutes=12, eval_limit=48, eval_modes="l2r,psm,spm,l2r+ctx,psm+ctx,spm+ctx",
              tuned_modes="spm,spm+ctx", max_prompt_tokens=512,
              estimates={"model": 60, "repo": 20, "corpus": 30, "train": 12 * 60 + 90, "eval": 1300,
                         "serve": 30, "lsp": 30, "verif-env": 60})
# QUICK's training minute: `inhouse train` spends ~2 minutes beside its budget here (loading, tokenizing the
# split, a slow first step, the dev evaluation); with 2 minutes of budget the quick demo took 6.7 (2026-12-01).
QUICK = Budget(train_minutes=1, eval_limit=16, eval_modes="l2r,spm", tuned_modes="spm", max_prompt_tokens=256,
               estimates={"model": 60, "repo": 20, "corpus": 40, "train": 190, "eval": 130,
                          "serve": 30, "lsp": 30, "verif-env": 60})


class Progress:
    """One line per step with its estimate, then its real time; a running total against the plan."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.start = time.monotonic()
        self.timings: dict[str, float] = {}
        self.steps = list(budget.estimates)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        i = self.steps.index(name) + 1
        est = self.budget.estimates[name]
        left = sum(self.budget.estimates[s] for s in self.steps[i - 1:])
        print(f"\n[{i}/{len(self.steps)}] {name}: about {fmt_s(est)} (about {fmt_s(left)} left in all)", flush=True)
        t = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - t
        print(f"[{i}/{len(self.steps)}] {name}: done in {fmt_s(self.timings[name])}", flush=True)


# The full budget's results as recorded on this machine: what the quick demo prints beside its own.
FULL_DEMO_RECORD = ROOT / "docs" / "results" / "demo-full-2026-11-22.json"
HEADLINE_RECORD = ROOT / "docs" / "results" / "headline-2026-11-22"


def _wrap(lines: list[str]) -> str:
    """Each line wrapped to the terminal's usual width, continuation lines indented like the line."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + (2 if line.lstrip().startswith("- ") else 0))
        out.append(textwrap.fill(line, width=110, subsequent_indent=indent, break_on_hyphens=False))
    return "\n".join(out)


def _interval(d: dict[str, float], scale: float = 1.0) -> str:
    return (f"{d['delta'] * scale:+.1f} [{d['ci_low'] * scale:+.1f}, {d['ci_high'] * scale:+.1f}]"
            .replace("+-", "-"))


def quick_verdict(budget: Budget, report: dict[str, Any] | None) -> str:
    """What a quick run's exam can and cannot show, in plain words, with its own numbers labelled as such."""
    rows = int((report or {}).get("n") or budget.eval_limit)
    lines = [
        "What this quick run shows, and what it cannot:",
        f"  It ran every step with small budgets ({budget.train_minutes:g} minutes of training, {rows} held-out "
        "cursors): it shows that the chain works on this machine, from your repository to a suggestion in the "
        "editor.",
        "  It cannot show whether tuning pays: a few minutes of CPU training barely move the model, and on "
        f"{rows} cursors one cursor is {100 / max(rows, 1):.1f} points of exact match, so this run's difference is "
        "noise (a flat +0.0 [+0.0, +0.0] means neither run got a cursor exactly right, or both got the same ones).",
    ]
    headline = (report or {}).get("headline") or {}
    if headline.get("overall"):
        overall = headline["overall"]
        lines.append(f"  This run, {headline['b']} minus {headline['a']} (points, 95% interval; not a verdict): "
                     f"exact match {_interval(overall['exact_match'], 100)}, "
                     f"edit similarity {_interval(overall['edit_similarity'], 100)}.")
    return _wrap(lines)


def recorded_results(full_demo: Path = FULL_DEMO_RECORD, headline_dir: Path = HEADLINE_RECORD) -> str:
    """The full budget's recorded results on this machine, read from their records, with where each record lives
    and how to reproduce it."""
    demo = json.loads(full_demo.read_text(encoding="utf-8"))
    points = demo["points"]
    lines = [
        "The full budget's recorded results on this machine (2 CPU cores):",
        f"  - full demo, {demo['date']}: {demo['train_minutes']:g} minutes of training, {demo['cursors']} held-out "
        f"cursors, {demo['b']} minus {demo['a']}: exact match {_interval(points['exact_match'])}, "
        f"edit similarity {_interval(points['edit_similarity'])} points.",
        f"    Record: {full_demo.relative_to(ROOT)} (README.md, \"Measured here\"). "
        f"Reproduce: {demo['reproduce']}, about {demo['total_minutes']:.0f} minutes.",
    ]
    report = json.loads((headline_dir / "report.json").read_text(encoding="utf-8"))
    train_s = next((json.loads(line)["elapsed_s"] for line in
                    (headline_dir / "train-metrics.jsonl").read_text(encoding="utf-8").splitlines()
                    if '"event": "end"' in line), None)
    trained = f"{train_s / 60:.1f} minutes of training, " if train_s else ""
    lines.append(f"  - headline, {headline_dir.name.removeprefix('headline-')}: {trained}{report['n']} held-out "
                 "cursors, each tuned run minus the base's best mode:")
    for comp in report["comparisons"]:
        if comp.get("role") == "tuned vs base best mode":
            overall = comp["overall"]
            lines.append(f"      {comp['b']} minus {comp['a']}: exact match {_interval(overall['exact_match'], 100)}, "
                         f"edit similarity {_interval(overall['edit_similarity'], 100)} points.")
    lines.append(f"    Record: {headline_dir.relative_to(ROOT)}/ (README.md, report.md, report.json). "
                 "Reproduce: bench/headline.sh after `make model`, about 2 hours.")
    return _wrap(lines)


def fmt_s(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


CONFIG: list[str] = []  # ["--config", FILE] once the demo's inhouse.toml is written


def inhouse(*args: str, log: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [PY, "-m", "app.cli", *CONFIG, *args]
    print("  $ inhouse " + " ".join(args), flush=True)
    if log is None:
        proc = subprocess.run(cmd, cwd=ROOT, text=True)
    else:
        with log.open("w") as fh:
            proc = subprocess.run(cmd, cwd=ROOT, text=True, stdout=fh, stderr=subprocess.STDOUT)
    if check and proc.returncode != 0:
        hint = f" (log: {log})" if log else ""
        raise SystemExit(f"demo: `inhouse {args[0]}` failed with exit {proc.returncode}{hint}")
    return proc


def fetch_repo(out: Path) -> Path:
    """Download the company stand-in as an sdist and make it a git repository (the corpus reads git)."""
    src = out / "src"
    repo = out / "company-repo"
    if (repo / ".git").is_dir():
        return repo
    src.mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(src),
                    COMPANY_REPO], check=True)
    sdist = next(src.glob("*.tar.gz"))
    tmp = out / ".company-repo.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp, filter="data")
    (top,) = list(tmp.iterdir())
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=top, check=True)
    subprocess.run([*git, "add", "-A"], cwd=top, check=True)
    subprocess.run([*git, "commit", "-q", "-m", f"import {sdist.name}"], cwd=top, check=True)
    os.replace(top, repo)
    shutil.rmtree(tmp, ignore_errors=True)
    return repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the server exited with {proc.returncode} before it was ready")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise SystemExit("demo: the server did not become healthy in time")


class LspClient:
    """A minimal JSON-RPC client over stdio, enough to ask `inhouse lsp` for an inline completion."""

    def __init__(self, cmd: list[str], log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.next_id = 0

    def send(self, method: str, params: dict, notify: bool = False) -> int | None:
        msg: dict = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            self.next_id += 1
            msg["id"] = self.next_id
        body = json.dumps(msg).encode()
        self.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.stdin.flush()
        return msg.get("id")

    def read(self) -> dict:
        length = 0
        while True:
            line = self.stdout.readline()
            if not line:
                raise SystemExit("demo: the language server closed its output")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.stdout.read(length))

    def request(self, method: str, params: dict, timeout: float = 120) -> Any:
        rid = self.send(method, params)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read()
            if msg.get("id") == rid and "method" not in msg:
                if "error" in msg:
                    raise SystemExit(f"demo: {method} failed: {msg['error']}")
                return msg.get("result")
            if "id" in msg and "method" in msg:  # a request from the server: answer it
                body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": None}).encode()
                self.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.stdin.flush()
        raise SystemExit(f"demo: no answer to {method}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.request("shutdown", {}, timeout=10)
            self.send("exit", {}, notify=True)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
        self.log.close()


def pick_heldout(dataset: Path) -> tuple[str, str, int, int]:
    """A held-out (exam) file and a cursor in it where a developer would wait for a suggestion: the end of the
    typed part of a line (an exam row of kind `line_end`), not inside a word with text to its right."""
    import pyarrow.parquet as pq

    rows = []
    for shard in sorted((dataset / "eval").glob("*.parquet")):
        rows += pq.read_table(shard, columns=["prefix", "middle", "suffix", "path", "language", "kind"]).to_pylist()
    for row in sorted(rows, key=lambda r: (r["kind"] != "line_end", r["path"])):
        if row["language"] == "python" and row["middle"].strip() and row["suffix"].startswith("\n"):
            text = row["prefix"] + row["middle"] + row["suffix"]
            line = row["prefix"].count("\n")
            col = len(row["prefix"].rsplit("\n", 1)[-1].encode("utf-16-le")) // 2
            return row["path"], text, line, col
    raise SystemExit("demo: the exam has no Python row to complete")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "demo-out")
    ap.add_argument("--full", action="store_true",
                    help="the full budgets (about 25 minutes; the default, quick, takes about 6)")
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "smollm2",
                    help="where the embedded model is kept (fetched once, reused)")
    args = ap.parse_args(argv)
    budget = FULL if args.full else QUICK
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    progress = Progress(budget)
    (out / "inhouse.toml").write_text(DEMO_CONFIG, encoding="utf-8")
    CONFIG[:] = ["--config", str(out / "inhouse.toml")]
    started: list[subprocess.Popen] = []
    lsp: LspClient | None = None
    summary: dict = {"quick": not args.full, "budget": budget.__dict__}

    def stop_all(*_sig) -> None:
        if lsp is not None:
            lsp.close()
        for p in started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=15)
            if p.poll() is None:
                p.kill()

    def on_sigterm(*_sig: object) -> None:
        stop_all()
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with progress.step("model"):
            inhouse("model", "demo", "-o", str(args.model_dir))
        with progress.step("repo"):
            repo = fetch_repo(out)
            print(f"  company repository stand-in: {COMPANY_REPO} at {repo}")
        dataset = out / "dataset"
        with progress.step("corpus"):
            inhouse("corpus", "build", str(repo), "-o", str(dataset), "--model", str(args.model_dir),
                    "--overwrite", "--no-progress", log=logs / "corpus.log")
            inhouse("corpus", "stats", str(dataset))
        adapters = out / "adapters"
        adapter = adapters / "company"
        with progress.step("train"):
            inhouse("train", "--base", str(args.model_dir), "--data", str(dataset), "-o", str(adapter),
                    "--max-minutes", str(budget.train_minutes), "--overwrite", log=logs / "train.log")
        with progress.step("eval"):
            inhouse("eval", "--base", str(args.model_dir), "--adapter", str(adapter), "--data", str(dataset),
                    "--compare", "--limit", str(budget.eval_limit), "--modes", budget.eval_modes,
                    "--tuned-modes", budget.tuned_modes, "--max-prompt-tokens", str(budget.max_prompt_tokens),
                    "--overwrite", "-o", str(out / "exam"), log=logs / "eval.log")
            report = out / "exam" / "report.md"
            if args.full:
                print(report.read_text(encoding="utf-8") if report.is_file() else "  (no report.md written)")
            else:
                report_json = out / "exam" / "report.json"
                exam = json.loads(report_json.read_text(encoding="utf-8")) if report_json.is_file() else None
                print(f"  the exam's report: {report}")
                print(quick_verdict(budget, exam))
                print(recorded_results())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with progress.step("serve"):
            with (logs / "serve.log").open("w") as fh:
                server = subprocess.Popen([PY, "-m", "app.cli", "serve", "--model", str(args.model_dir),
                                           "--adapters", str(adapters), "--port", str(port)],
                                          cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
            started.append(server)
            wait_healthy(url, server)
            print(f"  embedded server ready at {url} with adapter 'company'")
        with progress.step("lsp"):
            path, text, line, col = pick_heldout(dataset)
            doc = out / "heldout" / Path(path).name
            doc.parent.mkdir(exist_ok=True)
            doc.write_text(text, encoding="utf-8")
            lsp = LspClient([PY, "-m", "app.cli", "lsp"], logs / "lsp.log")
            lsp.request("initialize", {"processId": os.getpid(), "rootUri": doc.parent.as_uri(), "capabilities": {},
                                       # A CPU backend: a smaller prompt and a patient timeout.
                                       "initializationOptions": {"backendUrl": url, "adapter": "company",
                                                                 "tokenizer": str(args.model_dir / "tokenizer.json"),
                                                                 "maxPromptTokens": budget.max_prompt_tokens,
                                                                 "timeoutMs": 60000}})
            lsp.send("initialized", {}, notify=True)
            # The editor shows the file as the developer has it: typed up to the cursor, the rest still to write.
            prefix_lines = text.splitlines(keepends=True)
            typed = "".join(prefix_lines[:line]) + prefix_lines[line][:col] + "\n" + "".join(prefix_lines[line + 1:])
            lsp.send("textDocument/didOpen", {"textDocument": {"uri": doc.as_uri(), "languageId": "python",
                                                               "version": 1, "text": typed}}, notify=True)
            result = lsp.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": doc.as_uri()}, "position": {"line": line, "character": col},
                "context": {"triggerKind": 2}})
            items = (result or {}).get("items", []) if isinstance(result, dict) else (result or [])
            suggestion = items[0]["insertText"] if items else ""
            suggestion = suggestion if isinstance(suggestion, str) else suggestion.get("value", "")
            lines = text.splitlines()
            print(f"  held-out file {path}, cursor at line {line + 1}:")
            for ln in lines[max(0, line - 3):line + 1]:
                print(f"    | {ln}")
            print(f"  suggestion: {suggestion!r}")
            print(f"  the file had:  {prefix_lines[line][col:].rstrip()!r}")
            summary["lsp_suggestion"] = suggestion
            lsp.close()
            lsp = None
        with progress.step("verif-env"):
            rtl = out / "rtl" / "counter.v"
            rtl.parent.mkdir(exist_ok=True)
            rtl.write_text(DEMO_RTL, encoding="utf-8")
            inhouse("verif-env", str(rtl), "--top", "counter", "-o", str(out / "verif-env"), "--check", "--force",
                    log=logs / "verif-env.log")
            check = out / "verif-env" / "reports" / "check.json"
            if check.is_file():
                print("  " + check.read_text(encoding="utf-8").replace("\n", "\n  ")[:2000])
    finally:
        stop_all()
    summary["timings_s"] = {k: round(v, 1) for k, v in progress.timings.items()}
    summary["total_s"] = round(time.monotonic() - progress.start, 1)
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"\ndemo finished in {fmt_s(summary['total_s'])}; everything is in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
