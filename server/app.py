"""The ASGI app of `inhouse serve`: TGI's HTTP API (and OpenAI's completions, `server.openai`) over the engine.

`create_app(model_dir, adapters_dir=None, **options)` loads the model and starts the engine thread; it returns
a FastAPI app usable with uvicorn or in-process with `httpx.ASGITransport`. `app.state.server.engine.close()`
(or the app's shutdown) stops the engine thread.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from server import errors
from server.config import ServeConfig
from server.generation import FinishEvent, TokenEvent
from server.schema import CompatGenerateRequest, GenerateRequest, TokenizeRequest
from server.state import ServerState
from server.streaming import open_stream, run_to_end
from server.validation import Prepared

log = logging.getLogger(__name__)


def create_app(model_dir: str | Path, adapters_dir: str | Path | None = None, *, config: ServeConfig | None = None,
               **options: Any) -> FastAPI:
    """Load the model in `model_dir` and return the server; `options` are `ServeConfig` fields."""
    if config is None:
        config = ServeConfig(adapters=str(adapters_dir) if adapters_dir else None, **options)
    elif adapters_dir is not None or options:
        config = ServeConfig(**{**_fields(config), **options,
                                **({"adapters": str(adapters_dir)} if adapters_dir else {})})
    api_key = None
    if config.api_key_file:  # a bad key file should fail before minutes of model loading
        from server.auth import read_api_key

        api_key = read_api_key(config.api_key_file)
    state = ServerState.load(model_dir, config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.engine.close()

    app = FastAPI(title="inhouse", version=state.info()["version"], lifespan=lifespan)
    app.state.server = state
    errors.install(app)
    _routes(app, state)
    from server import openai

    openai.install(app, state)
    if api_key is not None:
        from server.auth import BearerAuth

        app.add_middleware(BearerAuth, api_key=api_key)
    return app


def _fields(cfg: ServeConfig) -> dict[str, Any]:
    from core.config import to_dict

    return to_dict(cfg)


def _token(ev: TokenEvent) -> dict[str, Any]:
    return {"id": ev.id, "text": ev.text, "logprob": ev.logprob, "special": ev.special}


def _details(ev: FinishEvent) -> dict[str, Any]:
    return {"finish_reason": ev.finish_reason, "generated_tokens": ev.generated_tokens, "seed": ev.seed,
            "prefill": [{"id": i, "text": t, "logprob": lp} for i, t, lp in ev.prefill],
            "tokens": [_token(t) for t in ev.tokens], "top_tokens": None, "best_of_sequences": None}


def _headers(ev: FinishEvent, started: float) -> dict[str, str]:
    return {"x-generated-tokens": str(ev.generated_tokens), "x-prompt-tokens": str(ev.input_length),
            "x-total-time": str(int((time.monotonic() - started) * 1000)),
            "x-prefix-reused-tokens": str(ev.reused_tokens)}


def generation_json(prepared: Prepared, ev: FinishEvent) -> dict[str, Any]:
    text = prepared.inputs + ev.generated_text if prepared.return_full_text else ev.generated_text
    body: dict[str, Any] = {"generated_text": text}
    if prepared.details:
        body["details"] = _details(ev)
    return body


def _sse(data: dict[str, Any]) -> str:
    return f"data:{json.dumps(data, ensure_ascii=False)}\n\n"


def tgi_stream_renderer(prepared: Prepared):
    def render(token: TokenEvent | None, finish: FinishEvent | None) -> str:
        out: dict[str, Any] = {"index": token.index if token else 0,
                               "token": _token(token) if token else {"id": 0, "text": "", "logprob": 0.0,
                                                                     "special": True},
                               "top_tokens": None, "generated_text": None, "details": None}
        if finish is not None:
            out["generated_text"] = generation_json(prepared, finish)["generated_text"]
            out["details"] = {"finish_reason": finish.finish_reason, "generated_tokens": finish.generated_tokens,
                              "seed": finish.seed, "input_length": finish.input_length}
        return _sse(out)

    return render


def _routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    async def health() -> Response:
        if not state.engine.alive:
            return JSONResponse({"error": "the generation engine is not running", "error_type": "unhealthy"},
                                status_code=503)
        return Response(status_code=200)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return state.info()

    @app.get("/metrics")
    async def metrics() -> Response:
        body = state.metrics.render() + state.engine.metrics_text().encode()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/generate")
    async def generate(body: GenerateRequest, request: Request) -> Response:
        started = time.monotonic()
        prepared = await state.prepare(body.inputs, body.parameters)
        ev = await run_to_end(state, prepared, request)
        if isinstance(ev, Response):
            return ev
        return JSONResponse(generation_json(prepared, ev), headers=_headers(ev, started))

    @app.post("/generate_stream")
    async def generate_stream(body: GenerateRequest) -> Response:
        prepared = await state.prepare(body.inputs, body.parameters)
        return await open_stream(state, prepared, tgi_stream_renderer(prepared))

    @app.post("/")
    async def compat_generate(body: CompatGenerateRequest, request: Request) -> Response:
        prepared = await state.prepare(body.inputs, body.parameters)
        if body.stream:
            return await open_stream(state, prepared, tgi_stream_renderer(prepared))
        started = time.monotonic()
        ev = await run_to_end(state, prepared, request)
        if isinstance(ev, Response):
            return ev
        return JSONResponse([generation_json(prepared, ev)], headers=_headers(ev, started))

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> list[dict[str, Any]]:
        backend = getattr(state.tokenizer, "backend_tokenizer", None)
        if backend is None:
            ids = state.tokenizer(body.inputs)["input_ids"]
            return [{"id": i, "text": state.tokenizer.decode([i]), "start": 0, "stop": 0} for i in ids]
        enc = backend.encode(body.inputs)
        return [{"id": i, "text": body.inputs[s:e], "start": s, "stop": e} for i, (s, e) in
                zip(enc.ids, enc.offsets, strict=True)]
