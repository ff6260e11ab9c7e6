"""core.client against real HTTP servers on 127.0.0.1: a TGI-shaped one for error mapping and healing,
an OpenAI-shaped one through httpx's ASGI transport. The real embedded server is covered in tests/lsp."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.client import ClientConfig, CompletionRequest, OpenAIBackend, TgiBackend, create_backend
from core.errors import (
    BackendUnavailableError,
    ConfigError,
    GenerationError,
    OverloadedError,
    ValidationError,
)
from server.threaded import serve_in_thread

SEEN: list[dict] = []


async def _info(request: Request) -> JSONResponse:
    return JSONResponse({"model_id": "tiny", "max_input_tokens": 1000, "max_total_tokens": 1200,
                         "max_stop_sequences": 2, "fim_format": "starcoder", "adapters": ["a1"],
                         "token_healing": True})


async def _generate(request: Request) -> JSONResponse:
    body = await request.json()
    SEEN.append(body)
    prompt, params = body["inputs"], body.get("parameters", {})
    errors = {"overloaded": (429, "overloaded"), "invalid": (422, "validation"), "broken": (424, "generation")}
    if prompt in errors:
        status, kind = errors[prompt]
        return JSONResponse({"error": f"{kind} happened", "error_type": kind}, status_code=status)
    if prompt == "slow":
        await asyncio.sleep(1)
    text = "def<fim_middle>tail"
    grammar = params.get("grammar")
    if grammar and prompt != "ignore-grammar":
        # The healing grammar is re.escape(literal) + "[\s\S]*": generate text that starts with the literal.
        literal = grammar["value"].removesuffix(r"[\s\S]*").replace("\\", "")
        text = literal + "_total = 0<fim_middle>"
    return JSONResponse({"generated_text": text,
                         "details": {"finish_reason": "stop_sequence", "generated_tokens": 5, "seed": None,
                                     "prefill": [], "tokens": []}})


@pytest.fixture(scope="module")
def tgi_url():
    app = Starlette(routes=[Route("/info", _info), Route("/generate", _generate, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_tgi_info_and_completion(tgi_url):
    backend = create_backend(ClientConfig(url=tgi_url, kind="tgi"))
    assert isinstance(backend, TgiBackend)
    try:
        info = await backend.info()
        assert info.fim_format == "starcoder" and info.max_input_tokens == 1000 and info.adapters == ("a1",)
        SEEN.clear()
        result = await backend.complete(CompletionRequest("x = 1", stop=("<fim_middle>", "<a>", "<b>")))
        assert result.text == "def"  # cut at the stop sequence
        assert result.generated_tokens == 5 and result.finish_reason == "stop_sequence"
        # TGI rejects more stop sequences than /info's max_stop_sequences: the client sends that many.
        assert SEEN[-1]["parameters"]["stop"] == ["<fim_middle>", "<a>"]
        assert SEEN[-1]["parameters"]["do_sample"] is False
    finally:
        await backend.aclose()


async def test_tgi_healing_sends_grammar_and_strips_it(tgi_url):
    backend = create_backend(ClientConfig(url=tgi_url, adapter_id="a1"))
    try:
        SEEN.clear()
        result = await backend.complete(CompletionRequest("sum", heal="sub.val", stop=("<fim_middle>",)))
        params = SEEN[-1]["parameters"]
        assert params["grammar"] == {"type": "regex", "value": r"sub\.val[\s\S]*"}
        assert params["adapter_id"] == "a1"
        assert result.text == "_total = 0"
        # A backend that ignores the constraint gives text that does not continue the word: dropped.
        ignored = await backend.complete(CompletionRequest("ignore-grammar", heal="xy"))
        assert ignored.text == ""
    finally:
        await backend.aclose()


@pytest.mark.parametrize("prompt, error", [("overloaded", OverloadedError), ("invalid", ValidationError),
                                           ("broken", GenerationError)])
async def test_tgi_errors_are_mapped(tgi_url, prompt, error):
    backend = create_backend(ClientConfig(url=tgi_url))
    try:
        with pytest.raises(error):
            await backend.complete(CompletionRequest(prompt))
    finally:
        await backend.aclose()


async def test_tgi_timeout_and_down(tgi_url):
    backend = create_backend(ClientConfig(url=tgi_url, timeout_s=0.3))
    down = create_backend(ClientConfig(url=f"http://127.0.0.1:{_free_port()}", timeout_s=2))
    try:
        with pytest.raises(BackendUnavailableError):
            await backend.complete(CompletionRequest("slow"))
        with pytest.raises(BackendUnavailableError):
            await down.complete(CompletionRequest("x"))
        with pytest.raises(BackendUnavailableError):
            await down.info()
    finally:
        await backend.aclose()
        await down.aclose()


def _openai_app(seen: list[dict]) -> Starlette:
    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"data": [{"id": "base-model", "max_model_len": 4096},
                                      {"id": "team-lora", "parent": "base-model"}]})

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        if body["prompt"] == "overloaded":
            return JSONResponse({"error": "busy"}, status_code=429)
        return JSONResponse({"choices": [{"text": "ue + 1<|endoftext|>x", "finish_reason": "stop"}],
                             "usage": {"completion_tokens": 4}})

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/completions", completions, methods=["POST"])])


async def test_openai_backend(tmp_path):
    seen: list[dict] = []
    key = tmp_path / "key"
    key.write_text("secret\n")
    cfg = ClientConfig(url="http://testserver/v1", kind="openai", api_key_file=str(key))
    backend = OpenAIBackend(cfg, transport=httpx.ASGITransport(app=_openai_app(seen)))
    try:
        info = await backend.info()
        assert info.model_id == "base-model" and info.adapters == ("team-lora",) and info.max_total_tokens == 4096
        result = await backend.complete(CompletionRequest("<p>x = ", heal="val", stop=("<|endoftext|>",),
                                                          adapter_id="team-lora"))
        # No constrained start on this API: the healed text goes back at the end of the raw FIM prompt.
        assert seen[-1]["prompt"] == "<p>x = val" and seen[-1]["model"] == "team-lora"
        assert result.text == "ue + 1" and result.generated_tokens == 4
        with pytest.raises(OverloadedError):
            await backend.complete(CompletionRequest("overloaded"))
    finally:
        await backend.aclose()
    assert json.dumps(seen)  # plain JSON bodies


def test_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="`kind` must be one of"):
        ClientConfig(kind="grpc")
    with pytest.raises(ConfigError, match="`timeout_s` must be > 0"):
        ClientConfig(timeout_s=0)
    with pytest.raises(ConfigError, match="api_key_file"):
        ClientConfig(api_key_file=str(tmp_path / "missing")).api_key()
