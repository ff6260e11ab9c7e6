"""Benchmark of the embedded server: the candidate engines side by side, then the chosen one under load, in one run.

Candidates (each in its own process, `bench/engines.py`; the same ~512-token prompt, 16 new tokens, greedy):
the embedded server on its default CPU engine (llama.cpp, `auto`: IQ4_NL for SmolLM2), on the Q4_1 GGUF it writes
(`served-llamacpp-Q4_1`, SmolLM2's exact weights without a repacked kernel),
idle and with one core kept busy; the torch engine (`--engine torch`) in float32 and int8; bare llama.cpp
through `xllamacpp` on GGUFs re-quantized from the shipped Q4_1 file. Columns: cold prompt, each keystroke
(prompt +1 char, prefix reused), decode tok/s, server/bare (the server's time over its engine's own library
call on the same prompt: `model.generate`, or llama.cpp on the same GGUF and tokens), RSS (served rows: with two
adapters loaded).
Figures (each a ratio or value measured in this run):
  cold_512_prompt_s      the default engine's cold 512-token prompt, 16 new tokens (<= 1 s)
  server_vs_bare         the default engine's cold request / its bare library call (<= 1.1): llama.cpp with one slot
  server_vs_own_llamacpp the same / the engine's own llama.cpp server called directly (same slots and cache):
                         the server's own cost apart from llama.cpp's configuration (the table's "(...)")
  rss_two_adapters_mb    the default engine's server RSS with the base and two adapters (<= 400)
  stream_vs_generate     tokens/s of one streamed request / tokens/s of the engine's own library call (>= 0.9)
  concurrent_vs_serial   aggregate tokens/s of 8 concurrent clients / the same 8 requests one after another (>= 2)
  prefix_extend_time     time of a request whose prompt extends the previous one by 5 characters / the first (<= 0.5)
  errors_under_load      failed requests over the whole run, including a burst of 32 mixed requests (0)
Usage: .venv/bin/python bench/serve.py [--model DIR | --tiny] [--candidates all|none|LIST] [--no-load-figures]
                                      [--new-tokens 32]
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


CANDIDATES = [  # (engine, threads, busy core); 0: the server's own choice
    ("served-llamacpp-auto", "0", False), ("served-llamacpp-Q4_1", "0", False), ("torch-int8", "0", False),
    ("torch-float32", "1", False), ("llamacpp-Q4_1", "1", False),
    ("served-llamacpp-auto", "0", True), ("served-llamacpp-Q4_1", "0", True), ("torch-int8", "0", True),
]
DEFAULT = "served-llamacpp-auto"  # what `inhouse serve` runs on a CPU (server/loading.py: choose_engine, auto type)


def make_adapters(model_dir: Path, out: Path, n: int = 2) -> Path:
    """n random LoRA adapters (r 16, attention projections) for the model: for the RSS figure."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for i in range(n):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         init_lora_weights=False, task_type="CAUSAL_LM")
        get_peft_model(model, cfg).save_pretrained(str(out / f"team-{chr(97 + i)}"))
    return out


def run_candidates(model_dir: Path, chosen: list[tuple[str, str, bool]], adapters: Path) -> list[dict]:
    """Each candidate in its own process (`bench/engines.py`), one after another; a failed one is reported."""
    import os
    import subprocess

    rows = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    import importlib.util

    for i, (engine, spec, busy) in enumerate(chosen, 1):
        threads = spec
        if "llamacpp-" in engine and importlib.util.find_spec("xllamacpp") is None:
            rows.append({"engine": engine, "threads": threads, "busy_core": busy,
                         "error": "xllamacpp is not installed (pip install -e '.[serve]')"})
            continue
        busy_note = ", one core busy" if busy else ""
        _progress(f"candidate {i}/{len(chosen)}: {engine}, threads {threads if threads != '0' else 'auto'}{busy_note}"
                  f" (load {os.getloadavg()[0]:.1f})")
        cmd = [sys.executable, str(ROOT / "bench" / "engines.py"), engine, "--model", str(model_dir),
               "--threads", threads]
        if busy:
            cmd.append("--busy")
        elif engine in ("torch-int8", DEFAULT):
            cmd += ["--adapters", str(adapters)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            rows.append({"engine": engine, "threads": threads, "busy_core": busy,
                         "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]})
        else:
            rows.append({**json.loads(lines[-1]), "load": os.getloadavg()[0]})
    return rows


def candidates_table(rows: list[dict]) -> str:
    out = [("| engine | threads | one core busy | cold 512-token prompt, 16 new | each keystroke (p50 / max) "
            "| decode tok/s | server / bare | RSS MB | load |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            error = r["error"].replace("|", "/")
            out.append(f"| {r['engine']} | {r['threads']} | {'yes' if r['busy_core'] else 'no'} | failed: {error} |"
                       " | | | | |")
            continue
        ratio = (f"{r['server_vs_bare']:.2f}" if "server_vs_bare" in r
                 else f"{r['server_cold_s'] / r['bare_cold_s']:.2f}" if "bare_cold_s" in r else "-")
        if "server_vs_own_llamacpp" in r:
            ratio += f" ({r['server_vs_own_llamacpp']:.2f})"
        out.append(f"| {r['engine']} | {r['threads']} | {'yes' if r['busy_core'] else 'no'} | {r['cold_s']:.2f} s "
                   f"| {r['typing_p50_s'] * 1000:.0f} / {r['typing_max_s'] * 1000:.0f} ms | {r['decode_tps']:.0f} "
                   f"| {ratio} | {r['rss_mb']:.0f} | {r['load']:.1f} |")
    return "\n".join(out)


class LlamaBaseline:
    """llama.cpp called directly (`xllamacpp`) on the served engine's own GGUF and threads (greedy, n new tokens)."""

    def __init__(self, engine) -> None:
        from bench.llamacpp import LlamaCpp

        self.tok = engine.tokenizer
        self.llama = LlamaCpp(engine.gguf, engine.choice.threads)

    def tokens_per_s(self, prompt: str, new_tokens: int) -> float:
        t = self.llama.complete(self.tok(prompt)["input_ids"], new_tokens, cache=False)
        return t.decode_tokens / t.wall_s


class Baseline:
    """`model.generate` in this process, on its own copy of the model (greedy, exactly n new tokens)."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        from server.quantize import quantize_linears

        quantize_linears(self.model)  # the server's default CPU weights: the same model on both sides

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


async def run_server_figures(url: str, args, baseline, errors: list[str]) -> dict[str, float]:
    from huggingface_hub import AsyncInferenceClient

    client = AsyncInferenceClient(base_url=url, timeout=600)
    out: dict[str, float] = {}

    async def guarded(coro):
        try:
            return await coro
        except Exception as exc:  # counted: the figure is "errors under load"
            errors.append(f"{type(exc).__name__}: {exc}")
            return 0, 0.0

    _progress("one stream vs the engine's own library call, interleaved (the load on a shared machine drifts)")
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
    parser.add_argument("--candidates", default="all",
                        help="all, none, or a comma list of engine[:threads[:busy]], "
                        "e.g. served-llamacpp-Q4_0:0,served-llamacpp-Q4_0:2:busy,torch-int8:0")
    parser.add_argument("--no-load-figures", action="store_true", help="only the candidates table")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefix-chars", type=int, default=2000, help="length of the prompt the user extends")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for both sides of the load figures (0: the server's choice)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="inhouse-bench-") as tmp:
        model_dir = args.model
        if args.tiny or not (model_dir / "config.json").is_file():
            from finetune.models import build_tiny_model

            model_dir = build_tiny_model(Path(tmp) / "tiny")
            print(f"model: tiny random model (no checkpoint at {args.model})" if not args.tiny else "model: tiny")
        else:
            print(f"model: {model_dir}")
        if args.candidates != "none":
            chosen = CANDIDATES if args.candidates == "all" else [
                (spec.split(":")[0], (spec.split(":") + ["0"])[1], spec.endswith(":busy"))
                for spec in args.candidates.split(",")]
            if args.tiny:
                chosen = [c for c in chosen if not c[0].startswith("llamacpp-")]  # bare GGUFs are SmolLM2's
            rows = run_candidates(model_dir, chosen, make_adapters(model_dir, Path(tmp) / "adapters"))
            print(candidates_table(rows))
        if args.no_load_figures:
            return 0

        from server.app import create_app

        errors: list[str] = []
        app = create_app(model_dir, threads=args.threads, log_level="warning")
        engine = app.state.server.engine
        print(f"engine: {engine.choice.name}, threads: {engine.choice.threads}, weights: {engine.choice.weights}"
              + (f", build: {engine.choice.build}" if engine.choice.build else ""))
        baseline = LlamaBaseline(engine) if engine.choice.name == "llama.cpp" else Baseline(model_dir)
        try:
            with serve_in_thread(app) as url:
                figures = asyncio.run(run_server_figures(url, args, baseline, errors))
        finally:
            app.state.server.engine.close()

    stream_ratio, base_tps = figures["stream_ratio"], figures["generate_tps"]
    conc_ratio = figures["concurrent_tps"] / figures["serial_tps"]
    print(f"one stream: {figures['stream_tps']:.1f} tok/s; the engine's library call: {base_tps:.1f} tok/s; "
          f"median ratio of interleaved pairs {stream_ratio:.2f}")
    print(f"8 concurrent: {figures['concurrent_tps']:.1f} tok/s; 8 in a row: {figures['serial_tps']:.1f} tok/s; "
          f"ratio {conc_ratio:.2f}")
    print(f"prompt extended by 5 chars: {figures['prefix_ratio']:.2f} of the first request's time")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    out_rows = []
    default = next((r for r in rows if r["engine"].startswith(DEFAULT) and not r["busy_core"] and "error" not in r),
                   None)
    if default is not None:
        bare_ratio = default["server_vs_bare"]
        out_rows += [("cold_512_prompt_s", default["cold_s"], 1.0, default["cold_s"] <= 1.0),
                     ("server_vs_bare_cold_time", bare_ratio, 1.1, bare_ratio <= 1.1),
                     ("server_vs_own_llamacpp_cold_time", default["server_vs_own_llamacpp"], 1.1,
                      default["server_vs_own_llamacpp"] <= 1.1),
                     ("rss_two_adapters_mb", default["rss_mb"], 400, default["rss_mb"] <= 400)]
    out_rows += [
        ("stream_vs_generate_tokens_per_s", stream_ratio, 0.9, stream_ratio >= 0.9),
        ("concurrent8_vs_serial_tokens_per_s", conc_ratio, 2.0, conc_ratio >= 2.0),
        ("prefix_extend5_vs_first_time", figures["prefix_ratio"], 0.5, figures["prefix_ratio"] <= 0.5),
        ("errors_under_load", float(len(errors)), 0, not errors),
    ]
    print(json.dumps({"name": "serve", "figures": [
        {"figure": f, "value": round(v, 3), "target": t, "met": bool(m)} for f, v, t, m in out_rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
