"""The language server reaches a backend that needs a bearer token (`inhouse serve --api-key-file`)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.client import CompletionRequest
from lsp.config import LspConfig, apply_client_settings
from lsp.session import Session
from server.threaded import serve_in_thread

TOKEN = "s3cret-token"


async def _guarded(request: Request) -> JSONResponse:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return JSONResponse({"error": "unauthorized", "error_type": "authentication"}, status_code=401)
    if request.url.path == "/info":
        return JSONResponse({"model_id": "m", "max_input_tokens": 100, "max_total_tokens": 200,
                             "max_stop_sequences": 4, "fim_format": "starcoder", "adapters": [],
                             "token_healing": True})
    return JSONResponse({"generated_text": "42", "details": {"finish_reason": "length", "generated_tokens": 1,
                                                             "seed": None, "prefill": [], "tokens": []}})


@pytest.fixture
def guarded_url():
    app = Starlette(routes=[Route("/info", _guarded), Route("/generate", _guarded, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield url


def test_api_key_file_setting_maps_from_editor_name(tmp_path):
    key = tmp_path / "key"
    cfg, problems = apply_client_settings(LspConfig(), {"apiKeyFile": str(key)})
    assert not problems and cfg.api_key_file == str(key)


async def test_session_sends_the_bearer_token(guarded_url, tmp_path):
    key = tmp_path / "key"
    key.write_text(TOKEN + "\n", encoding="utf-8")
    session = Session(LspConfig(backend_url=guarded_url, api_key_file=str(key), index_workspace=False))
    result = await session.backend.complete(CompletionRequest(prompt="x = "))
    assert result.text == "42"
    await session.backend.aclose()


async def test_without_the_token_the_backend_refuses(guarded_url):
    from core.errors import InhouseError

    session = Session(LspConfig(backend_url=guarded_url, index_workspace=False))
    with pytest.raises(InhouseError):
        await session.backend.complete(CompletionRequest(prompt="x = "))
    await session.backend.aclose()
