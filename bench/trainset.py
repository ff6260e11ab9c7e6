"""Training data memory: peak RSS of tokenizing the train split and of one epoch's data loading, at growing
numbers of synthetic rows, through `finetune.trainset` (datasets, memory-mapped, cached) and, as the
baseline measured in the same run, the former in-memory path (`data.load_rows` + `tokenize_rows` + `pack`).

    .venv/bin/python bench/trainset.py [--rows 10000,1000000] [--baseline-rows 10000,100000] [--seq-len 256]

Each measurement runs in a fresh process, after its imports: peak RSS is VmHWM (reset once the imports are
done), the peak of anonymous memory (RssAnon, sampled: the mapped Arrow cache counts in RSS as it is read, but
the kernel can drop those pages) and, for the tokenizing pool, `ru_maxrss` of its largest child. The last
stdout line is JSON for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ["total", "items", "weight", "scale", "result", "value", "count", "index", "name", "path", "data", "user"]


def make_dataset(root: Path, rows: int, seed: int = 0) -> None:
    """`rows` synthetic FIM and left-to-right rows (about 120 tokens each) in 50,000-row shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core import fim

    fmt = fim.get_format("starcoder")
    rnd = random.Random(seed)
    (root / "train").mkdir(parents=True)
    for shard, start in enumerate(range(0, rows, 50_000)):
        cols: dict[str, list] = {k: [] for k in ("text", "objective", "prompt_chars", "prefix", "middle", "suffix")}
        for _ in range(start, min(start + 50_000, rows)):
            a, b, c = (rnd.choice(WORDS) for _ in range(3))
            prefix = f"def {a}_{b}(items, scale={rnd.randint(2, 9)}):\n    {c} = 0\n    for item in items:\n"
            middle = f"        {c} += item.{b} * scale\n"
            suffix = f"    return {c}\n\n\nprint({a}_{b}([]))\n"
            objective = rnd.choice(("psm", "spm", "l2r"))
            if objective == "l2r":
                text, prompt = fmt.render_l2r(prefix + middle + suffix), ""
            else:
                prompt = fmt.render_prompt(prefix, suffix, objective)
                text = prompt + middle + fmt.eot
            for key, value in (("text", text), ("objective", objective), ("prompt_chars", len(prompt)),
                               ("prefix", prefix), ("middle", middle), ("suffix", suffix)):
                cols[key].append(value)
        pq.write_table(pa.table(cols), root / "train" / f"part-{shard:05d}.parquet")
    (root / "manifest.json").write_text(json.dumps({"fim_format": "starcoder", "rows": rows}))


def _status(key: str) -> float:
    """A /proc/self/status figure in MB (VmHWM: peak RSS; RssAnon: resident memory not backed by a file)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _AnonPeak:
    """The largest RssAnon seen, sampled every 20 ms (a memory-mapped Arrow file counts in RSS as it is read,
    but those pages are the page cache's to drop; anonymous memory is what the process holds)."""

    def __init__(self) -> None:
        import threading

        self.peak = _status("RssAnon")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, _status("RssAnon"))

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return max(self.peak, _status("RssAnon"))


def _peaks() -> dict[str, float]:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_mb": _status("VmHWM"), "peak_child_rss_mb": kids.ru_maxrss / 1024}


def measure(phase: str, dataset: Path, model: Path, cache: Path, seq_len: int) -> dict:
    """One phase in this process: 'tokenize', 'epoch' (cached split, every batch of one epoch) or
    'in-memory' (the former path: rows, examples and packed tensors in memory, then every batch)."""
    from transformers import AutoTokenizer

    from core import fim
    from finetune import data as D
    from finetune import trainset

    tok = AutoTokenizer.from_pretrained(model)
    fmt = fim.get_format("starcoder")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    base = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM: the peak from here on, not the imports'
    anon = _AnonPeak()
    start = time.perf_counter()
    batches = 0
    if phase == "in-memory":
        rows = D.load_rows(dataset, "train")
        examples, stats = D.tokenize_rows(rows, tok, fmt, "full", seq_len)
        packed = D.pack(examples, seq_len, pad, seed=0)
        plan = D.BatchPlan(len(packed), 8, 1, 1, 0)
        for step in range(plan.steps_per_epoch):
            idx = plan.indices(step, 0, 0)
            packed.input_ids[idx], packed.labels[idx], packed.position_ids[idx]
            batches += 1
    else:
        streamed, stats = trainset.load(dataset, tok, fmt, loss="full", seq_len=seq_len,
                                        objectives=("psm", "spm", "l2r"), pad_id=pad, cache_dir=str(cache))
        if phase == "epoch":
            plan = D.BatchPlan(len(streamed), 8, 1, 1, 0)
            for step in range(plan.steps_per_epoch):
                streamed.batch(plan.indices(step, 0, 0))
                batches += 1
    seconds = time.perf_counter() - start
    return {"phase": phase, "seconds": round(seconds, 2), "examples": stats.examples, "batches": batches,
            "rss_before_mb": round(base, 1), "peak_anon_mb": round(anon.close(), 1),
            **{k: round(v, 1) for k, v in _peaks().items()}}


def _run(phase: str, dataset: Path, model: Path, cache: Path, seq_len: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--measure", phase, "--dataset", str(dataset), "--model",
                           str(model), "--cache", str(cache), "--seq-len", str(seq_len)],
                          check=False, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="10000,1000000")
    parser.add_argument("--baseline-rows", default="10000")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--model", default=None, help="a model directory (default: a tiny one built here)")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.dataset), Path(args.model), Path(args.cache),
                                 args.seq_len)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="inhouse-bench-trainset-"))
    results = []
    try:
        model = Path(args.model) if args.model else None
        if model is None:
            from finetune.models import build_tiny_model

            model = build_tiny_model(tmp / "model", seed=0)
        baseline = {int(n) for n in args.baseline_rows.split(",") if n}
        for n in sorted({int(x) for x in args.rows.split(",") if x} | baseline):
            ds = tmp / f"ds{n}"
            make_dataset(ds, n)
            phases = ["tokenize", "epoch"] if n in {int(x) for x in args.rows.split(",") if x} else []
            phases += ["in-memory"] if n in baseline else []
            for phase in phases:
                r = _run(phase, ds, model, tmp / f"cache{n}", args.seq_len)
                r.update(rows=n, load=round(os.getloadavg()[0], 1))
                results.append(r)
                print(f"{n:>9,} rows  {phase:9s}  peak RSS {r['peak_rss_mb']:8.1f} MB, anonymous "
                      f"{r['peak_anon_mb']:8.1f} MB (largest child {r['peak_child_rss_mb']:7.1f} MB; "
                      f"{r['rss_before_mb']:.0f} MB after imports)  "
                      f"{r['seconds']:7.1f} s  {r['examples']:,} examples, {r['batches']:,} batches  "
                      f"load {r['load']}", flush=True)
            shutil.rmtree(ds, ignore_errors=True)
            shutil.rmtree(tmp / f"cache{n}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = []
    by = {(r["rows"], r["phase"]): r for r in results}
    sizes = sorted({r["rows"] for r in results if r["phase"] == "epoch"})
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for phase in ("tokenize", "epoch"):
            growth = by[(large, phase)]["peak_anon_mb"] / by[(small, phase)]["peak_anon_mb"]
            print(f"{phase}: peak anonymous memory x{growth:.2f} from {small:,} to {large:,} rows "
                  f"({large // small}x the rows)")
            figures.append({"figure": f"{phase}_peak_anon_growth_{small}_to_{large}", "value": round(growth, 3),
                            "target": 1.5, "met": growth <= 1.5})
    print(json.dumps({"name": "trainset", "results": results, "figures": figures}))


if __name__ == "__main__":
    main()
