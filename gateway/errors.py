"""The gateway's HTTP error table, in the model server's body (`{"error", "error_type"}`) so clients parse both.

The server's own statuses (422 validation, 424 generation, 429 overloaded) mean the same here; the gateway
adds 401 (token), 403 (adapter of another team, policy), 404, 413 (batch too large), 503 (no healthy
upstream) and 504 (upstream too slow). Errors an upstream returns are passed through untouched by the proxy.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    GenerationError,
    InhouseError,
    OverloadedError,
    ValidationError,
)
from gateway.accounts import AuthError, ForbiddenError, NotFoundError

log = logging.getLogger(__name__)


class TooLargeError(InhouseError):
    error_type = "too_large"


STATUS: tuple[tuple[type[InhouseError], int], ...] = (
    (ValidationError, 422), (GenerationError, 424), (OverloadedError, 429), (AuthError, 401), (ForbiddenError, 403),
    (NotFoundError, 404), (TooLargeError, 413), (BackendTimeoutError, 504), (BackendUnavailableError, 503))


def status_of(exc: BaseException) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def error_body(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, InhouseError):
        return {"error": str(exc), "error_type": exc.error_type}
    return {"error": f"internal error: {type(exc).__name__}", "error_type": "internal"}


def error_response(exc: BaseException) -> JSONResponse:
    code = status_of(exc)
    headers = {"www-authenticate": "Bearer"} if code == 401 else {"retry-after": "1"} if code == 429 else None
    return JSONResponse(error_body(exc), status_code=code, headers=headers)


def sse_error(exc: BaseException) -> bytes:
    return f"data:{json.dumps(error_body(exc))}\n\n".encode()


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def describe_validation(exc: RequestValidationError) -> str:
    out = []
    for err in exc.errors():
        field = _field(tuple(err.get("loc", ())))
        if err.get("type") == "missing":
            out.append(f"`{field}` is required")
        elif err.get("type") == "extra_forbidden":
            out.append(f"`{field}` is not a known field (events carry no code or other free text)")
        else:
            out.append(f"`{field}` must be valid: {err.get('msg')}, got {err.get('input')!r}"[:300])
    return "; ".join(out[:5]) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(InhouseError)
    async def _inhouse(_request: Request, exc: InhouseError) -> JSONResponse:
        if status_of(exc) == 500:
            log.error("request failed: %s", exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": describe_validation(exc), "error_type": "validation"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "error_type": "http"}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _other(_request: Request, exc: Exception) -> JSONResponse:  # the HTTP edge
        log.exception("unexpected error")
        return JSONResponse(error_body(exc), status_code=500)
