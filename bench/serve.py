"""Benchmark of the embedded server against in-process generation, in one run.

Figures (each a ratio measured in this process against a baseline run here too):
  stream_vs_generate     tokens/s of one streamed request / tokens/s of `model.generate` on the same prompt (>= 0.9)
  concurrent_vs_serial   aggregate tokens/s of 8 concurrent clients / the same 8 requests one after another (>= 2)
  prefix_extend_time     time of a request whose prompt extends the previous one by 5 characters / the first (<= 0.5)
  errors_under_load      failed requests over the whole run, including a burst of 32 mixed requests (0)
Usage: .venv/bin/python bench/serve.py [--model DIR | --tiny] [--new-tokens 32] [--torch-threads 1]
The last stdout line is JSON: {"name": "serve", "figures": [{"figure", "value", "target", "met"}]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.threaded import serve_in_thread  # noqa: E402

SOURCE = (ROOT / "core" / "fim.py").read_text(encoding="utf-8")


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _prompts(tag: str, n: int) -> list[str]:
    """n code prompts that share no prefix with each other or with other tags' prompts."""
    body = SOURCE[:1200]
    return [f"# {tag} request {i}\n" + body[i * 97:i * 97 + 600] for i in range(n)]


class Baseline:
    """`model.generate` in this process, on its own copy of the model (greedy, exactly n new tokens)."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def tokens_per_s(self, prompt: str, new_tokens: int) -> float:
        ids = self.tok(prompt, return_tensors="pt")
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            out = self.model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id)
            elapsed = time.perf_counter() - t0
        return (out.shape[1] - ids["input_ids"].shape[1]) / elapsed


async def one_stream(client, prompt: str, new_tokens: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    async for _ev in await client.text_generation(prompt, max_new_tokens=new_tokens, details=True, stream=True):
        n += 1
    return n, time.perf_counter() - t0


async def one_request(client, prompt: str, new_tokens: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    out = await client.text_generation(prompt, max_new_tokens=new_tokens, details=True)
    return out.details.generated_tokens, time.perf_counter() - t0


async def run_server_figures(url: str, args, baseline: Baseline, errors: list[str]) -> dict[str, float]:
    from huggingface_hub import AsyncInferenceClient

    client = AsyncInferenceClient(base_url=url, timeout=600)
    out: dict[str, float] = {}

    async def guarded(coro):
        try:
            return await coro
        except Exception as exc:  # counted: the figure is "errors under load"
            errors.append(f"{type(exc).__name__}: {exc}")
            return 0, 0.0

    _progress("one stream vs model.generate, interleaved (the load on a shared machine drifts)")
    # 1. one stream, tokens/s, against model.generate on the same prompt right after it (after warm-ups)
    await guarded(one_stream(client, _prompts("warm", 1)[0], 4))
    baseline.tokens_per_s(_prompts("warm", 1)[0], 4)
    pairs, stream_rates, base_rates = [], [], []
    for k in range(args.runs):
        prompt = _prompts(f"stream{k}", 1)[0]
        n, t = await guarded(one_stream(client, prompt, args.new_tokens))
        stream_rate = n / t if t else 0.0
        base_rate = baseline.tokens_per_s(prompt, max(n, 1))
        stream_rates.append(stream_rate)
        base_rates.append(base_rate)
        pairs.append(stream_rate / base_rate)
    out["stream_tps"], out["generate_tps"] = statistics.median(stream_rates), statistics.median(base_rates)
    out["stream_ratio"] = statistics.median(pairs)

    _progress("8 concurrent, then 8 in a row")
    # 2. eight clients at once vs the same eight requests in a row (different prompts: no prefix reuse across runs)
    t0 = time.perf_counter()
    results = await asyncio.gather(*[guarded(one_request(client, p, args.new_tokens))
                                     for p in _prompts("concurrent", 8)])
    out["concurrent_tps"] = sum(n for n, _ in results) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    total = 0
    for p in _prompts("serial", 8):
        n, _ = await guarded(one_request(client, p, args.new_tokens))
        total += n
    out["serial_tps"] = total / (time.perf_counter() - t0)

    _progress("prefix reuse")
    # 3. a user typing: the prompt grows by 5 characters
    ratios = []
    long_body = SOURCE[:args.prefix_chars]
    for k in range(args.runs):
        first = f"# typing {k}\n" + long_body
        _, t_first = await guarded(one_request(client, first, 8))
        _, t_next = await guarded(one_request(client, first + "\n    ", 8))
        ratios.append(t_next / t_first if t_first else float("inf"))
    out["prefix_ratio"] = statistics.median(ratios)

    _progress("burst of 32")
    # 4. a burst of 32 mixed requests (streams and plain, several lengths)
    burst = []
    for i, p in enumerate(_prompts("burst", 32)):
        burst.append(guarded(one_stream(client, p, 8 + i % 16) if i % 2 else one_request(client, p, 8 + i % 16)))
    await asyncio.gather(*burst)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random model (no checkpoint needed)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefix-chars", type=int, default=2000, help="length of the prompt the user extends")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch CPU threads for both sides (0: torch's default; on a shared machine more than "
                             "one thread can be 10x slower)")
    args = parser.parse_args(argv)

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory(prefix="inhouse-bench-") as tmp:
        model_dir = args.model
        if args.tiny or not (model_dir / "config.json").is_file():
            from finetune.models import build_tiny_model

            model_dir = build_tiny_model(Path(tmp) / "tiny")
            print(f"model: tiny random model (no checkpoint at {args.model})" if not args.tiny else "model: tiny")
        else:
            print(f"model: {model_dir}")
        print(f"torch threads: {torch.get_num_threads()}, device: cpu")

        from server.app import create_app

        errors: list[str] = []
        app = create_app(model_dir, torch_threads=args.torch_threads, log_level="warning")
        baseline = Baseline(model_dir)
        try:
            with serve_in_thread(app) as url:
                figures = asyncio.run(run_server_figures(url, args, baseline, errors))
        finally:
            app.state.server.engine.close()

    stream_ratio, base_tps = figures["stream_ratio"], figures["generate_tps"]
    conc_ratio = figures["concurrent_tps"] / figures["serial_tps"]
    print(f"one stream: {figures['stream_tps']:.1f} tok/s; model.generate: {base_tps:.1f} tok/s; "
          f"median ratio of interleaved pairs {stream_ratio:.2f}")
    print(f"8 concurrent: {figures['concurrent_tps']:.1f} tok/s; 8 in a row: {figures['serial_tps']:.1f} tok/s; "
          f"ratio {conc_ratio:.2f}")
    print(f"prompt extended by 5 chars: {figures['prefix_ratio']:.2f} of the first request's time")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    rows = [
        ("stream_vs_generate_tokens_per_s", stream_ratio, 0.9, stream_ratio >= 0.9),
        ("concurrent8_vs_serial_tokens_per_s", conc_ratio, 2.0, conc_ratio >= 2.0),
        ("prefix_extend5_vs_first_time", figures["prefix_ratio"], 0.5, figures["prefix_ratio"] <= 0.5),
        ("errors_under_load", float(len(errors)), 0, not errors),
    ]
    print(json.dumps({"name": "serve", "figures": [
        {"figure": f, "value": round(v, 3), "target": t, "met": bool(m)} for f, v, t, m in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
