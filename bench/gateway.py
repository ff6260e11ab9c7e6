"""Benchmark of the gateway in front of the embedded server, in one run.

Figures (the baseline is the same model server asked directly, in this run, requests interleaved):
  gateway_overhead_p50_ms       p50 latency through the gateway minus p50 direct, one completion at a time
  through_vs_direct_p50         p50 through / p50 direct (target <= 1.05)
  streams_at_limit_errors       failed streams among N concurrent streams of one user whose limit is N (0)
  over_limit_429                of N + K concurrent streams, how many got 429 (target K) ...
  over_limit_other_errors       ... and how many failed any other way (0)
Both servers run as `inhouse serve` / `inhouse gateway` processes on 127.0.0.1; this process is the client.
Usage: .venv/bin/python bench/gateway.py [--model DIR | --tiny] [--requests 40] [--streams 64] [--over 16]
The last stdout line is JSON: {"name": "gateway", "figures": [{"figure", "value", "target", "met"}]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.launch import free_port, serve_subprocess, stop_group  # noqa: E402

SOURCE = (ROOT / "core" / "fim.py").read_text(encoding="utf-8")


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_gateway(db: str, upstream: str, log: Path, limit: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "gateway", "--db", db, "--upstream", upstream,
                                 "--port", str(port), "--max-concurrent-per-user", str(limit),
                                 "--rate-limit-per-minute", "100000"], cwd=ROOT, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                # a CPU server decodes 8 of the 64 streams at a time: the last wait minutes for
                                # their first token, longer than the default 60 s between bytes
                                env={**os.environ, "INHOUSE_GATEWAY_TIMEOUT_S": "900"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_group(proc)
            raise SystemExit("the gateway did not become healthy in 60 s")
        time.sleep(0.2)


async def overhead(direct: str, through: str, token: str, n: int, new_tokens: int) -> dict[str, float]:
    import httpx

    prompts = [f"# request {i}\n" + SOURCE[i * 53:i * 53 + 400] for i in range(n)]
    times: dict[str, list[float]] = {"direct": [], "through": []}
    async with httpx.AsyncClient(timeout=120) as http:
        async def one(url: str, prompt: str, headers: dict[str, str]) -> float:
            t0 = time.perf_counter()
            r = await http.post(f"{url}/generate", json={"inputs": prompt, "parameters": {
                "max_new_tokens": new_tokens, "details": True}}, headers=headers)
            r.raise_for_status()
            return (time.perf_counter() - t0) * 1000

        for warm in prompts[:2]:
            await one(direct, warm, {})
            await one(through, warm, {"Authorization": f"Bearer {token}"})
        for i, prompt in enumerate(prompts):  # interleaved, alternating who goes first: drift hits both alike
            order = [("direct", direct, {}), ("through", through, {"Authorization": f"Bearer {token}"})]
            for name, url, headers in (order if i % 2 == 0 else order[::-1]):
                times[name].append(await one(url, prompt + f"\n# {name}\n", headers))
            if (i + 1) % 10 == 0:
                _progress(f"overhead: {i + 1}/{n} pairs")
    p50d, p50t = statistics.median(times["direct"]), statistics.median(times["through"])
    return {"p50_direct_ms": p50d, "p50_through_ms": p50t, "overhead_ms": p50t - p50d, "ratio": p50t / p50d}


async def streams(url: str, token: str, n: int, new_tokens: int) -> dict[str, int]:
    """n concurrent streams of one user; counts 200, 429 and anything else."""
    import httpx

    counts = {"ok": 0, "429": 0, "other": 0}
    limits = httpx.Limits(max_connections=n + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        async def one(i: int) -> None:
            body = {"inputs": f"# stream {i}\n" + SOURCE[i * 31:i * 31 + 120],
                    "parameters": {"max_new_tokens": new_tokens}}
            try:
                async with http.stream("POST", f"{url}/generate_stream", json=body,
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    if resp.status_code == 429:
                        counts["429"] += 1
                        return
                    if resp.status_code != 200:
                        counts["other"] += 1
                        _progress(f"stream {i}: {resp.status_code} {(await resp.aread())[:200]!r}")
                        return
                    final = None
                    async for line in resp.aiter_lines():
                        if line.startswith("data:"):
                            final = json.loads(line[5:])
                    ok = final is not None and final.get("generated_text") is not None
                    counts["ok" if ok else "other"] += 1
                    if not ok:
                        _progress(f"stream {i}: ended without its text: {final}")
            except httpx.HTTPError as exc:
                counts["other"] += 1
                _progress(f"stream {i}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(i) for i in range(n)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random model (no checkpoint needed)")
    parser.add_argument("--requests", type=int, default=40, help="completions each way for the overhead figure")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens per completion for the overhead figure")
    parser.add_argument("--stream-tokens", type=int, default=8, help="tokens per stream for the concurrency figures")
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams at the per-user limit")
    parser.add_argument("--over", type=int, default=16, help="extra concurrent streams beyond the limit")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    from gateway.accounts import Accounts
    from gateway.db import open_database

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        model_dir = args.model
        if args.tiny or not (model_dir / "config.json").is_file():
            from finetune.models import build_tiny_model

            model_dir = build_tiny_model(Path(tmp) / "tiny")
        print(f"model: {model_dir}; load: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        db = f"sqlite:///{tmp}/gateway.db"
        accounts = Accounts(open_database(db))
        accounts.add_user("bench")
        token = accounts.create_token("bench")
        _progress("starting inhouse serve")
        with serve_subprocess(model_dir, Path(tmp) / "serve.log", args=[
                "--threads", str(args.torch_threads), "--max-concurrent-requests", str(4 * args.streams)]) as up:
            _progress("starting inhouse gateway")
            proc, gw = start_gateway(db, up, Path(tmp) / "gateway.log", args.streams)
            try:
                o = asyncio.run(overhead(up, gw, token, args.requests, args.new_tokens))
                print(f"one completion of {args.new_tokens} tokens: p50 direct {o['p50_direct_ms']:.1f} ms, "
                      f"through the gateway {o['p50_through_ms']:.1f} ms (+{o['overhead_ms']:.1f} ms, "
                      f"ratio {o['ratio']:.3f})")
                _progress(f"{args.streams} concurrent streams at the limit")
                at = asyncio.run(streams(gw, token, args.streams, args.stream_tokens))
                print(f"{args.streams} concurrent streams, limit {args.streams}: {at}")
                _progress(f"{args.streams + args.over} concurrent streams over the limit")
                over = asyncio.run(streams(gw, token, args.streams + args.over, args.stream_tokens))
                print(f"{args.streams + args.over} concurrent streams, limit {args.streams}: {over}")
            finally:
                stop_group(proc)
        print(f"load after: {os.getloadavg()[0]:.2f}")
    figures = [
        ("gateway_overhead_p50_ms", round(o["overhead_ms"], 2), None, True),
        ("through_vs_direct_p50", round(o["ratio"], 4), 1.05, o["ratio"] <= 1.05),
        (f"streams_at_limit_{args.streams}_errors", at["other"] + at["429"], 0, at["other"] + at["429"] == 0),
        ("over_limit_429", over["429"], args.over, over["429"] == args.over),
        ("over_limit_other_errors", over["other"], 0, over["other"] == 0),
    ]
    print(json.dumps({"name": "gateway", "figures": [{"figure": f, "value": v, "target": t, "met": m}
                                                     for f, v, t, m in figures]}))


if __name__ == "__main__":
    main()
