"""Helpers of the registry and canary tests: fake adapter directories, a fake model server that serves whatever
adapters its directory holds (answering with the adapter id it was asked for), and the `inhouse` CLI in-process
or as another process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request  # at module level: the routes' annotations are resolved here
from fastapi.responses import JSONResponse, Response

REPO = Path(__file__).resolve().parents[2]


def make_adapter_dir(path: Path, seed: int, data: str = "d" * 64, extra_files: int = 2) -> Path:
    """A directory the model server would list: adapter_config.json, weights, inhouse.json, and a checkpoint
    subdirectory (which the registry leaves behind)."""
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "seed": seed}))
    (path / "adapter_model.safetensors").write_bytes(os.urandom(64) + bytes([seed]) * 4096)
    for i in range(extra_files):
        (path / f"tokenizer_{i}.json").write_text(json.dumps({"i": i, "seed": seed}))
    (path / "inhouse.json").write_text(json.dumps({
        "kind": "adapter", "base_model": "models/smollm2", "dataset_manifest_sha256": data, "git_sha": f"abc{seed}",
        "profile": {"fim_format": "starcoder", "mode": "psm", "max_prompt_tokens": 1024 + seed}}))
    (path / "checkpoints" / "step-1").mkdir(parents=True)
    (path / "checkpoints" / "step-1" / "big.bin").write_bytes(b"x" * 1000)
    return path


def fake_upstream_app(serve_dir: Path):
    """A model server stand-in: /info lists the adapters of `serve_dir` as `inhouse serve` does (server.adapters),
    /generate answers with the adapter id it got (or "base")."""
    from server.adapters import AdapterDirectory

    adapters = AdapterDirectory(serve_dir)
    app = FastAPI()

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/info")
    async def info() -> JSONResponse:
        return JSONResponse({"model_id": "base-model", "adapters": adapters.ids(), "adapter_profiles": {},
                             "fim_format": "starcoder"})

    @app.post("/generate")
    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"generated_text": (body.get("parameters") or {}).get("adapter_id") or "base"})

    @app.post("/v1/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"choices": [{"text": body.get("model") or "base"}]})

    return app


@contextlib.contextmanager
def fake_upstream(serve_dir: Path) -> Iterator[str]:
    from server.threaded import serve_in_thread

    with serve_in_thread(fake_upstream_app(serve_dir)) as url:
        yield url


def cli_process(*args: str, db: str) -> dict:
    """`inhouse adapters ARGS --db DB --json` as another process: its one JSON object (asserts exit 0)."""
    proc = subprocess.run([sys.executable, "-m", "app.cli", "adapters", *args, "--db", db, "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)
