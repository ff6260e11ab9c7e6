"""The one place HTTP errors are mapped, TGI's way: validation 422, generation 424, overloaded 429, else 500.

Every error body is `{"error": message, "error_type": type}` (what huggingface_hub parses into its typed
exceptions). Installed on the app by `server.app.create_app`; `sse_error` is the same body inside a stream.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.errors import GenerationError, InhouseError, OverloadedError, ValidationError

log = logging.getLogger(__name__)

STATUS: dict[type[InhouseError], int] = {ValidationError: 422, GenerationError: 424, OverloadedError: 429}


def status_of(exc: BaseException) -> int:
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            return code
    return 500


def error_body(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, InhouseError):
        return {"error": str(exc), "error_type": exc.error_type}
    return {"error": f"internal error: {type(exc).__name__}", "error_type": "internal"}


def sse_error(exc: BaseException) -> str:
    return f"data:{json.dumps(error_body(exc))}\n\n"


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def describe_validation(exc: RequestValidationError) -> str:
    """Pydantic's errors as sentences naming the field, the rule and the value."""
    out = []
    for err in exc.errors():
        field = _field(tuple(err.get("loc", ())))
        if err.get("type") == "missing":
            out.append(f"`{field}` is required")
        elif err.get("type") == "extra_forbidden":
            out.append(f"`{field}` is not a known parameter")
        else:
            out.append(f"`{field}` must be valid: {err.get('msg')}, got {err.get('input')!r}")
    return "; ".join(out) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(InhouseError)
    async def _inhouse(_request: Request, exc: InhouseError) -> JSONResponse:
        code = status_of(exc)
        if code == 500:
            log.error("request failed: %s", exc)
        return JSONResponse(error_body(exc), status_code=code)

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
