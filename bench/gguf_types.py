"""The cold ~512-token prompt (+16 new tokens) on bare llama.cpp, one thread, for each GGUF type the server writes.

    .venv/bin/python bench/gguf_types.py [--types Q4_1,Q4_0,IQ4_NL,Q8_0] [--threads 1] [--runs 3]

Each type is written from models/smollm2 by the server's own exporter (`server.gguf_export`, cached in
bench/out/), loaded into its own in-process llama.cpp server (`bench/llamacpp.py`; read, not mapped, as the
engine loads it), and the types take turns on fresh prompts (this machine's speed drifts between minutes).
Prints the llama.cpp build
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    parser.add_argument("--types", default="Q4_1,Q4_0,IQ4_NL,Q8_0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    import xllamacpp

    from bench.llamacpp import LlamaCpp
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
    servers = {qtype: LlamaCpp(path, args.threads, read=True) for qtype, path in files.items()}
    runs: dict[str, list[tuple[float, float, float]]] = {qtype: [] for qtype in types}
    for k in range(args.runs + 1):  # the first round warms each server up and is not counted
        for qtype, server in servers.items():
            ids = tokenizer(f"# cold {k} {qtype}\n" + prompt)["input_ids"]
            timed = server.complete(ids, 16)
            if k:
                runs[qtype].append((timed.wall_s, timed.prompt_ms, timed.decode_ms))
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
