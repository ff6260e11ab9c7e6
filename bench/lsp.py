"""Benchmark of the language server against the backend alone, and of typing, in one run.

Figures:
  lsp_overhead_p50_ms / _p95_ms   the server's own cost: inline completion through `inhouse lsp` (client-side,
                                  JSON-RPC over stdio included) minus the backend call alone for the same
                                  prompt (same client library, same request), paired per cursor
  lsp_vs_backend_p50_ratio        p50 latency through the server / p50 of the backend alone (<= 1.25)
  typing_stale_suggestions        200 keystrokes typed into a document with a request per keystroke, the client
                                  never cancelling: suggestions that arrive not matching the document as it
                                  is by then (target 0)
  typing_keystroke_to_suggestion  keystroke -> suggestion of the requests answered while still the newest for
    _p50_ms / _p95_ms             their document, the language server's own debounce included, the embedded
                                  server's prefix cache on (a user typing): p50 <= 200 ms, p95 <= 600 ms
  typing_one_core_busy_p50_ms     the same typing with one core kept busy by a loop (<= 400 ms)
The embedded server runs as a subprocess on its own thread choice: with its prefix cache off for the paired
calls (both paths pay the same prompt cost), on for typing.

    .venv/bin/python bench/lsp.py [--model models/smollm2 | --tiny] [--samples 30] [--keystrokes 200]
                                  [--max-prompt-tokens 512]

The last stdout line is JSON: {"name": "lsp", "figures": [{"figure", "value", "target", "met"}]}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

from core.client import ClientConfig, CompletionRequest, create_backend  # noqa: E402
from core.completion.pipeline import CompletionInput  # noqa: E402
from core.launch import serve_subprocess  # noqa: E402
from lsp.config import LspConfig  # noqa: E402
from lsp.session import Session  # noqa: E402
from lsp.status import STATUS_NOTIFICATION  # noqa: E402

PY = sys.executable
SOURCE = (ROOT / "core" / "fim.py").read_text(encoding="utf-8")
MAX_TOKENS = 16


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def embedded_server(model_dir: Path, log: Path, prefix_cache: bool):
    """`inhouse serve` with its own thread choice. Prefix cache off for the paired calls (they send the same
    prompt, and the second must not be served cheaper); on for typing, as a user gets it."""
    (log.parent / "empty.toml").write_text("")
    return serve_subprocess(model_dir, log, ready_timeout_s=300, env={
        "INHOUSE_SERVE_PREFIX_CACHE_ENTRIES": "4" if prefix_cache else "0",
        "INHOUSE_CONFIG": str(log.parent / "empty.toml")})


@contextlib.contextmanager
def busy_core(on: bool):
    """One core kept busy by a loop in another process (the editor, a build) while the block runs."""
    proc = subprocess.Popen([PY, "-c", "while True: pass"]) if on else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def language_server(options: dict, root: Path | list[Path], log: Path):
    """`inhouse lsp` with one workspace folder per root (the first is also the root URI)."""
    roots = root if isinstance(root, list) else [root]
    root = roots[0].parent if isinstance(root, list) else root
    client = LanguageClient("bench", "1")
    client.feature(STATUS_NOTIFICATION)(lambda *_args: None)  # the status bar of a real editor
    env = {**os.environ, "INHOUSE_CONFIG": str(root / "empty.toml")}
    (root / "empty.toml").write_text("")
    await client.start_io(PY, "-m", "app.cli", "lsp", env=env)
    assert client._server is not None  # started just above
    drain = asyncio.ensure_future(_drain(client._server.stderr, log))  # a full stderr pipe would block the server
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=roots[0].as_uri(), initialization_options=options,
        workspace_folders=[types.WorkspaceFolder(uri=r.as_uri(), name=r.name) for r in roots]))
    client.initialized(types.InitializedParams())
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_async(None), 10)
            client.exit(None)
        await client.stop()
        drain.cancel()


async def _drain(stream, log: Path) -> None:
    with log.open("ab") as fh:
        while line := await stream.readline():
            fh.write(line)
            fh.flush()  # readers (bench/editor.py waits for the index line) see it at once


def params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic))


def cursors(n: int) -> list[tuple[str, str]]:
    """n (document text, cursor line) pairs: the cursor at the end of a line of real code, each a new file."""
    lines = SOURCE.splitlines()
    out = []
    step = max(1, (len(lines) - 40) // n)
    for i in range(n):
        end = 30 + i * step
        out.append(("\n".join(lines[:end]) + "\n", "\n".join(lines[end:end + 20]) + "\n"))
    return out


async def overhead(url: str, options: dict, root: Path, samples: int, log: Path) -> tuple[list[float], list[float]]:
    """Paired latencies (through the server, backend alone) for `samples` cursors."""
    cfg = LspConfig(backend_url=url, max_tokens=MAX_TOKENS, max_tokens_single_line=MAX_TOKENS,
                    tokenizer=options.get("tokenizer"), index_workspace=False,
                    max_prompt_tokens=options["maxPromptTokens"])
    session = Session(cfg)
    await session.refresh_info()
    backend = create_backend(ClientConfig(url=url, timeout_s=60))
    await backend.info()
    through, alone = [], []
    async with language_server(options, root, log) as client:
        for i, (prefix, suffix) in enumerate([("", "")] + cursors(samples)):
            if i == 0:
                prefix, suffix = "import os\n\n\ndef main():\n    ", "\n"  # warm-up of both paths, not counted
            path = f"sample_{i}.py"
            uri = (root / path).as_uri()
            client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=prefix + suffix)))
            line = prefix.count("\n")
            inp = CompletionInput(path, prefix, suffix, "python")
            decision = session.pipeline.decide(inp)
            prompt, max_new, _ = session.pipeline.prepare(inp, decision)
            req = session.pipeline.request(prompt, max_new)  # the runner's own request for this cursor

            async def through_server(uri: str, line: int) -> float:
                t0 = time.perf_counter()
                await client.text_document_inline_completion_async(params(uri, line, 0))
                return (time.perf_counter() - t0) * 1000

            async def backend_alone(req: CompletionRequest) -> float:
                t0 = time.perf_counter()
                await backend.complete(req)
                return (time.perf_counter() - t0) * 1000

            # Alternate which goes first, so neither gains from running right after the other.
            if i % 2:
                t_lsp, t_alone = await through_server(uri, line), await backend_alone(req)
            else:
                t_alone, t_lsp = await backend_alone(req), await through_server(uri, line)
            client.text_document_did_close(types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
            if i:
                through.append(t_lsp)
                alone.append(t_alone)
    await session.aclose()
    await backend.aclose()
    return through, alone


@dataclass
class Pending:
    version: int
    sent: float
    offset: int


async def typing(url: str, options: dict, root: Path, keystrokes: int, log: Path,
                 line_pause_s: float) -> dict[str, float]:
    """Type `keystrokes` characters of real code, one inline completion request per keystroke, never cancelling.

    100 ms a key inside words, 0.6 s at word ends, `line_pause_s` at line ends (a user reading the suggestion).
    """
    text_to_type = SOURCE[SOURCE.index("def get_format"):][:keystrokes]
    doc = SOURCE[:SOURCE.index("def get_format")]
    uri = (root / "typing.py").as_uri()
    state: dict[str, Any] = {"text": doc, "version": 1}
    latest_sent = {"version": 1}
    stale = delivered = answered_latest = 0
    latencies: list[float] = []
    tasks = []

    async with language_server(options, root, log) as client:
        client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=uri, language_id="python", version=1, text=doc)))

        async def ask(p: Pending, line: int, character: int) -> None:
            nonlocal stale, delivered, answered_latest
            result = await client.text_document_inline_completion_async(params(uri, line, character))
            elapsed = (time.perf_counter() - p.sent) * 1000
            items = list(result.items) if isinstance(result, types.InlineCompletionList) else list(result or [])
            if p.version == latest_sent["version"]:
                answered_latest += 1
                latencies.append(elapsed)
            if not items:
                return
            delivered += 1
            typed_since = state["text"][p.offset:]
            suggestion = items[0].insert_text if isinstance(items[0].insert_text, str) else items[0].insert_text.value
            # Still showable only if everything typed since the request is the start of the suggestion.
            if state["version"] != p.version and not (suggestion.startswith(typed_since)
                                                      and len(typed_since) < len(suggestion)):
                stale += 1

        for ch in text_to_type:
            offset = len(state["text"])
            line = state["text"].count("\n")
            character = len(state["text"]) - (state["text"].rfind("\n") + 1)
            state["text"] += ch
            state["version"] += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=state["version"]),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line, character), end=types.Position(line, character)),
                    text=ch)]))
            new_offset = offset + 1
            new_line = state["text"].count("\n")
            new_char = len(state["text"]) - (state["text"].rfind("\n") + 1)
            latest_sent["version"] = state["version"]
            pending = Pending(state["version"], time.perf_counter(), new_offset)
            tasks.append(asyncio.ensure_future(ask(pending, new_line, new_char)))
            # A fast typist inside words (100 ms a key), pauses at word and line ends where suggestions matter.
            await asyncio.sleep(line_pause_s if ch == "\n" else 0.6 if ch in " (:,." else 0.1)
        await asyncio.gather(*tasks)
    return {"stale": stale, "delivered": delivered, "answered_latest": answered_latest,
            "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95), "requests": len(tasks)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random model")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--max-prompt-tokens", type=int, default=512,
                        help="prompt budget (CPU prefill of 2048 tokens dominates everything else)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="inhouse-bench-lsp-") as tmp:
        tmp_path = Path(tmp)
        model_dir = args.model
        if args.tiny or not (model_dir / "config.json").is_file():
            from finetune.models import build_tiny_model

            model_dir = build_tiny_model(tmp_path / "tiny")
            print("model: tiny random model")
        else:
            print(f"model: {model_dir}")
        options = {"maxTokens": MAX_TOKENS, "maxTokensSingleLine": MAX_TOKENS, "tokenizer": str(model_dir),
                   "maxPromptTokens": args.max_prompt_tokens,
                   "indexWorkspace": False, "timeoutMs": 60000}
        root = tmp_path / "ws"
        root.mkdir()
        with embedded_server(model_dir, tmp_path / "serve.log", prefix_cache=False) as url:
            # The server's own cost is measured without its debounce (a deliberate wait, not a cost).
            through, alone = asyncio.run(overhead(url, {**options, "backendUrl": url, "debounceMs": 0}, root,
                                                  args.samples, tmp_path / "lsp1.log"))
        # Line-end pauses long enough for this machine's backend to answer (a user reading a suggestion).
        line_pause = min(20.0, max(1.5, 1.5 * percentile(alone, 0.5) / 1000))
        typed = {}
        for busy in (False, True):  # the language server's own debounce; the server's prefix cache on
            with embedded_server(model_dir, tmp_path / f"serve-typing-{busy}.log", prefix_cache=True) as url, \
                    busy_core(busy):
                print(f"typing {args.keystrokes} keystrokes{', one core busy' if busy else ''} "
                      f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                typed[busy] = asyncio.run(typing(url, {**options, "backendUrl": url}, root, args.keystrokes,
                                                 tmp_path / f"lsp-typing-{busy}.log", line_pause))

    own = [a - b for a, b in zip(through, alone, strict=True)]
    ratio = statistics.median(through) / statistics.median(alone)
    print(f"inline completion through the server: p50 {percentile(through, .5):.1f} ms, "
          f"p95 {percentile(through, .95):.1f} ms; backend alone: p50 {percentile(alone, .5):.1f} ms, "
          f"p95 {percentile(alone, .95):.1f} ms ({len(own)} cursors)")
    print(f"server's own cost: p50 {percentile(own, .5):.1f} ms, p95 {percentile(own, .95):.1f} ms; ratio {ratio:.3f}")
    for busy, t in typed.items():
        print(f"typing{' (one core busy)' if busy else ''}: line-end pause {line_pause:.1f} s; {t['requests']} "
              f"keystrokes, {t['delivered']} suggestions delivered, {t['stale']} stale; keystroke -> suggestion of "
              f"requests answered while newest: p50 {t['p50']:.1f} ms, p95 {t['p95']:.1f} ms "
              f"({t['answered_latest']} requests)")
    quiet, loaded = typed[False], typed[True]
    rows = [
        ("lsp_overhead_p50_ms", percentile(own, .5), 20.0, percentile(own, .5) <= 20.0),
        ("lsp_overhead_p95_ms", percentile(own, .95), 50.0, percentile(own, .95) <= 50.0),
        ("lsp_vs_backend_p50_ratio", ratio, 1.25, ratio <= 1.25),
        ("typing_stale_suggestions", float(quiet["stale"]), 0, quiet["stale"] == 0),
        ("typing_keystroke_to_suggestion_p50_ms", quiet["p50"], 200.0, quiet["p50"] <= 200.0),
        ("typing_keystroke_to_suggestion_p95_ms", quiet["p95"], 600.0, quiet["p95"] <= 600.0),
        ("typing_one_core_busy_p50_ms", loaded["p50"], 400.0, loaded["p50"] <= 400.0),
    ]
    print(json.dumps({"name": "lsp", "figures": [
        {"figure": f, "value": round(v, 3), "target": t, "met": bool(m)} for f, v, t, m in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
