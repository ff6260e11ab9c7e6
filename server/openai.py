"""OpenAI-compatible `POST /v1/completions` and `GET /v1/models` over the same engine.

The `model` field picks an adapter (an adapter id) or the base model (its id, or omitted). Temperature 0 or
unset means greedy, as OpenAI clients expect. Errors keep TGI's body (`server.errors`).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from core.errors import ValidationError
from server.generation import FinishEvent, TokenEvent
from server.schema import CompletionRequest, GenerateParameters
from server.state import ServerState
from server.streaming import open_stream, run_to_end

_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def _parameters(body: CompletionRequest, state: ServerState) -> GenerateParameters:
    if body.n != 1 or (body.best_of or 1) != 1:
        raise ValidationError(f"`n` must be 1 (one completion per request), got {body.n}")
    if body.suffix:
        raise ValidationError("`suffix` must be unset: send a FIM prompt in the model's format instead, "
                              f"got {body.suffix!r}")
    adapter = None
    if body.model and body.model != state.model_id:
        if body.model not in state.adapters.ids():
            raise ValidationError(f"`model` must be {state.model_id!r} or an adapter id "
                                  f"({', '.join(state.adapters.ids()) or 'none loaded'}), got {body.model!r}")
        adapter = body.model
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    sampling = body.temperature is not None and body.temperature > 0
    return GenerateParameters(
        adapter_id=adapter, max_new_tokens=body.max_tokens, stop=stop, seed=body.seed,
        do_sample=sampling, temperature=body.temperature if sampling else None,
        top_p=body.top_p if sampling and body.top_p is not None and body.top_p < 1.0 else None,
        frequency_penalty=body.frequency_penalty or None, repetition_penalty=body.repetition_penalty,
        details=True, return_full_text=body.echo)


def install(app: FastAPI, state: ServerState) -> None:
    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": state.model_id, "object": "model", "created": 0, "owned_by": "inhouse"}]
        data += [{"id": a, "object": "model", "created": 0, "owned_by": "inhouse", "parent": state.model_id}
                 for a in state.adapters.ids()]
        return {"object": "list", "data": data}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        if not isinstance(body.prompt, str):
            if len(body.prompt) != 1:
                raise ValidationError(f"`prompt` must be one string, got a list of {len(body.prompt)}")
            body.prompt = body.prompt[0]
        prepared = await state.prepare(body.prompt, _parameters(body, state))
        cid, created, model = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time()), body.model or state.model_id

        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            return {"id": cid, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}

        if body.stream:
            def render(token: TokenEvent | None, finish: FinishEvent | None) -> str:
                text = token.text if token is not None and not token.special else ""
                out = f"data: {json.dumps(chunk(text, _FINISH[finish.finish_reason] if finish else None))}\n\n"
                return out + ("data: [DONE]\n\n" if finish is not None else "")

            return await open_stream(state, prepared, render)
        ev = await run_to_end(state, prepared, request)
        if isinstance(ev, Response):
            return ev
        text = prepared.inputs + ev.generated_text if prepared.return_full_text else ev.generated_text
        out = chunk(text, _FINISH[ev.finish_reason])
        out["usage"] = {"prompt_tokens": ev.input_length, "completion_tokens": ev.generated_tokens,
                        "total_tokens": ev.input_length + ev.generated_tokens}
        return JSONResponse(out)
