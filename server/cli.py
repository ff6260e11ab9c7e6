"""`inhouse serve`: load a model directory and serve TGI's HTTP API with uvicorn (127.0.0.1 by default).

Imports nothing heavy at module level: torch and transformers load inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", "-m", help="Model directory (config.json, tokenizer, inhouse.json)."),
    adapters: Path | None = typer.Option(None, "--adapters", help="Directory of LoRA adapters, one per sub-directory."),
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (default 8080)."),
    api_key_file: Path | None = typer.Option(None, "--api-key-file", help="File holding a bearer token to require."),
    max_concurrent_requests: int | None = typer.Option(None, "--max-concurrent-requests",
                                                       help="Requests in flight before 429 (default 128)."),
    max_batch_size: int | None = typer.Option(None, "--max-batch-size", help="Sequences decoded together (default 8)."),
    max_input_tokens: int | None = typer.Option(None, "--max-input-tokens"),
    max_total_tokens: int | None = typer.Option(None, "--max-total-tokens"),
    max_stop_sequences: int | None = typer.Option(None, "--max-stop-sequences"),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(None, "--dtype", help="auto, float32, bfloat16, float16."),
    model_id: str | None = typer.Option(None, "--model-id", help="Name reported in /info."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads of the engine (default: half the CPUs)."),
    weights: str | None = typer.Option(None, "--weights", help="torch engine: auto (int8 on CPU), int8 or float."),
    engine: str | None = typer.Option(None, "--engine", help="auto (llama.cpp on a CPU, torch on a GPU), llamacpp "
                                      "or torch."),
    gguf_type: str | None = typer.Option(None, "--gguf-type", help="llama.cpp engine: auto (the default: F32 under "
                                         "50 M parameters, Q4_0 for weights already on its grid, else IQ4_NL), "
                                         "IQ4_NL, Q4_0, Q4_1, Q8_0, F16, F32."),
) -> None:
    """Serve a model (and its LoRA adapters) with TGI's HTTP API."""
    import logging

    import uvicorn

    from core.config import resolve_section
    from server.app import create_app
    from server.config import ServeConfig

    cfg = resolve_section(
        ctx.obj, ServeConfig, host=host, port=port, adapters=str(adapters) if adapters else None,
        api_key_file=str(api_key_file) if api_key_file else None, max_concurrent_requests=max_concurrent_requests,
        max_batch_size=max_batch_size, max_input_tokens=max_input_tokens, max_total_tokens=max_total_tokens,
        max_stop_sequences=max_stop_sequences, device=device, dtype=dtype, model_id=model_id,
        threads=threads, weights=weights, engine=engine, gguf_type=gguf_type)
    app = create_app(model, config=cfg)
    logging.getLogger(__name__).info("serving %s on http://%s:%d", model, cfg.host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, timeout_graceful_shutdown=5)
