"""Benchmark of `inhouse train`'s step against a bare peft forward/backward/step loop, in one run.

Same model, LoRA config, batch size, sequence length and threads; the bare loop runs before and after the real
one (the machine is shared: the baseline is the median over both). Tokens per step = batch x seq_len.
Figures:
  train_vs_bare_peft   tokens/s of `inhouse train` / tokens/s of the bare loop (target >= 0.9)
  train_tokens_per_s   tokens/s of `inhouse train` (no target; for planning a time budget)
Usage: .venv/bin/python bench/train.py [--model DIR | --tiny] [--steps 12] [--batch-size 4] [--seq-len 256]
The last stdout line is JSON: {"name": "train", "figures": [{"figure", "value", "target", "met"}]}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import fim  # noqa: E402
from core.artifacts import read_info  # noqa: E402

TARGET = 0.9
WARMUP = 2


def write_dataset(root: Path, fmt_name: str) -> Path:
    """inhouse's own Python sources as left-to-right rows (a dataset in the corpus layout, train split only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fmt = fim.get_format(fmt_name)
    rows = []
    for path in sorted((ROOT / "core").rglob("*.py")) + sorted((ROOT / "finetune").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        rows.append({"text": fmt.render_l2r(text), "objective": "l2r", "prompt_chars": 0, "prefix": text,
                     "middle": "", "suffix": "", "kind": "l2r", "language": "python", "path": str(path),
                     "repo": "inhouse", "fim_format": fmt.name, "has_context": False})
    (root / "train").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "train" / "part-00000.parquet")
    (root / "manifest.json").write_text(json.dumps({"fim_format": fmt.name, "splits": {"train": len(rows)}}))
    return root


def bare_loop(model_dir: Path, batches: list, steps: int, cfg) -> list[float]:
    """Seconds per step of model(input_ids, labels) → backward → AdamW step, nothing else."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                             target_modules=list(cfg.target_modules), task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    times = []
    for i in range(steps):
        ids = batches[i % len(batches)]
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    ap.add_argument("--tiny", action="store_true", help="Use a tiny random model (fast; for CI).")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import torch

    from finetune.config import TrainConfig
    from finetune.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="inhouse-bench-train-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model
        if args.tiny or not (model_dir / "config.json").is_file():
            from finetune.models import build_tiny_model

            model_dir = build_tiny_model(tmp / "tiny")
        fmt_name = read_info(model_dir).get("fim_format", "smollm2")
        data = write_dataset(tmp / "data", fmt_name)
        cfg = TrainConfig(max_steps=args.steps + WARMUP, batch_size=args.batch_size, seq_len=args.seq_len,
                          eval_every=0, save_every=0, dev_limit=0, threads=args.threads, objectives=("l2r",))
        # The bare loop reads real token batches of the same shape.
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        ids = tok(fim.get_format(fmt_name).render_l2r((ROOT / "finetune" / "train.py").read_text() * 4),
                  add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        span = args.batch_size * args.seq_len
        batches = [ids[i * span:(i + 1) * span].view(args.batch_size, args.seq_len)
                   for i in range(max(1, len(ids) // span))]

        before = bare_loop(model_dir, batches, args.steps // 2 + WARMUP, cfg)
        out = train(model_dir, data, tmp / "adapter", cfg, progress=False)
        recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        ours = [r["tokens"] for r in recs if "loss" in r]
        rates = [r["tokens_per_s"] for r in recs if "loss" in r][WARMUP:]
        after = bare_loop(model_dir, batches, args.steps // 2 + WARMUP, cfg)
    tokens = args.batch_size * args.seq_len
    bare_rate = tokens / statistics.median(before + after)
    our_rate = statistics.median(rates)
    ratio = our_rate / bare_rate
    print(f"model {model_dir.name}, batch {args.batch_size} x seq {args.seq_len}, {len(rates)} timed steps, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare peft loop:  {bare_rate:,.0f} tokens/s (median step, before and after)")
    print(f"inhouse train:   {our_rate:,.0f} tokens/s (median step; {ours[-1]:,} tokens in all)")
    print(f"ratio:           {ratio:.3f}  (target >= {TARGET})")
    print(json.dumps({"name": "train", "figures": [
        {"figure": "train_vs_bare_peft", "value": round(ratio, 3), "target": TARGET, "met": ratio >= TARGET},
        {"figure": "train_tokens_per_s", "value": round(our_rate, 1), "target": None, "met": True},
    ]}))


if __name__ == "__main__":
    main()
