"""Optional bearer-token auth (`--api-key-file`): a pure ASGI middleware, so streams and disconnects pass through.

Every route but `/health` (the readiness probe) needs `Authorization: Bearer <token>`; otherwise 401 with
TGI's error body. Installed by `server.app.create_app` when a key file is configured.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from core.errors import ConfigError

OPEN_PATHS = frozenset({"/health"})


def read_api_key(path: str | Path) -> str:
    path = Path(path)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"`api_key_file` {str(path)!r} cannot be read: {exc}") from exc
    if not key:
        raise ConfigError(f"`api_key_file` {str(path)!r} is empty")
    return key


class BearerAuth:
    def __init__(self, app, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"authorization", b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong bearer token", "error_type": "unauthorized"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
