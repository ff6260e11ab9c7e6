"""The cold ~512-token prompt (+16 new tokens) on bare llama.cpp, one thread, for each GGUF type the server writes.

    .venv/bin/python bench/gguf_types.py [--types Q4_1,Q4_0,IQ4_NL,Q8_0] [--threads 1] [--runs 3]

Each type is written from models/smollm2 by the server's own exporter (`server.gguf_export`, cached in
bench/out/), loaded into its own in-process llama.cpp server (read, not mapped, as the engine loads it), and the
types take turns on fresh prompts (this machine's speed drifts between minutes). Prints the llama.cpp build
(its instruction sets: run it under a venv with the portable PyPI wheel and under one with the native build,
`server/native_build.py`, to compare the two) and each type's median cold request, its prompt and decode
milliseconds, and its ratio to Q4_1 in the same run. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engines import prompt_of  # noqa: E402


def _server(gguf: Path, threads: int):
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.n_ctx = 4096
    p.n_parallel = 1
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.load_mode = xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_NONE  # as server/llamacpp.py loads it
    p.hostnames = ["127.0.0.1"]
    p.port = 0
    p.verbosity = -1
    return xllamacpp.Server(p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    parser.add_argument("--types", default="Q4_1,Q4_0,IQ4_NL,Q8_0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    import xllamacpp

    from server.gguf_export import export_model
    from server.tokenizer import FastTokenizer

    types = args.types.split(",")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for qtype in types:
        files[qtype] = out_dir / f"{args.model.name}.{qtype}.gguf"
        if not files[qtype].is_file():
            t0 = time.perf_counter()
            export_model(args.model, files[qtype], qtype)
            print(f"wrote {files[qtype].name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    tokenizer = FastTokenizer(args.model)
    prompt, _ = prompt_of(tokenizer)
    servers = {qtype: _server(path, args.threads) for qtype, path in files.items()}
    runs: dict[str, list[tuple[float, float, float]]] = {qtype: [] for qtype in types}
    for k in range(args.runs + 1):  # the first round warms each server up and is not counted
        for qtype, server in servers.items():
            ids = tokenizer(f"# cold {k} {qtype}\n" + prompt)["input_ids"]
            t0 = time.perf_counter()
            out = server.handle_completions({"prompt": ids, "n_predict": 16, "temperature": 0.0, "top_k": 1,
                                             "ignore_eos": True})
            wall = time.perf_counter() - t0
            if "timings" not in out:
                raise SystemExit(f"llama.cpp failed on {qtype}: {out}")
            if k:
                runs[qtype].append((wall, out["timings"]["prompt_ms"], out["timings"]["predicted_ms"]))
    build = xllamacpp.get_system_info().strip()
    print(f"llama.cpp build: {build}")
    print(f"{len(ids)}-token prompt + 16 new tokens, {args.threads} thread(s), median of {args.runs}:")
    rows = []
    base = statistics.median(r[0] for r in runs[types[0]])
    for qtype in types:
        wall = statistics.median(r[0] for r in runs[qtype])
        prompt_ms = statistics.median(r[1] for r in runs[qtype])
        decode_ms = statistics.median(r[2] for r in runs[qtype])
        print(f"  {qtype:7s} cold {wall:.3f} s (prompt {prompt_ms:.0f} ms, 16 tokens {decode_ms:.0f} ms), "
              f"/ {types[0]} {wall / base:.2f}")
        rows.append({"type": qtype, "cold_s": round(wall, 3), "prompt_ms": round(prompt_ms),
                     "decode_ms": round(decode_ms), f"vs_{types[0]}": round(wall / base, 3)})
    print(json.dumps({"name": "gguf_types", "build": build, "threads": args.threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
