"""A slow backend is not an unreachable one: the client raises `BackendTimeoutError` (a subclass of
`BackendUnavailableError`) when a server accepted the connection but did not answer in time, and plain
`BackendUnavailableError` when nothing listens or the name does not resolve. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from core.client import ClientConfig, CompletionRequest, create_backend
from core.errors import BackendTimeoutError, BackendUnavailableError

pytestmark = pytest.mark.timeout(30)


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections, reads the request, never answers (a backend busy on a loaded machine)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            while await reader.read(4096):
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["tgi", "openai"])
async def test_timeout_is_a_timeout(kind):
    async with silent_server() as url:
        backend = create_backend(ClientConfig(url=url, kind=kind, timeout_s=0.3, model="m"))
        try:
            with pytest.raises(BackendTimeoutError):
                await backend.complete(CompletionRequest("def f(", max_new_tokens=4))
            with pytest.raises(BackendTimeoutError):
                await backend.info()
        finally:
            await backend.aclose()


@pytest.mark.parametrize("kind", ["tgi", "openai"])
@pytest.mark.parametrize("url", [f"http://127.0.0.1:{closed_port()}", "http://no-such-host.invalid:8080"])
async def test_refused_or_unknown_host_is_unreachable_not_slow(kind, url):
    backend = create_backend(ClientConfig(url=url, kind=kind, timeout_s=3, model="m"))
    try:
        for call in (lambda: backend.complete(CompletionRequest("def f(", max_new_tokens=4)), backend.info):
            with pytest.raises(BackendUnavailableError) as info:
                await call()
            assert not isinstance(info.value, BackendTimeoutError), info.value
    finally:
        await backend.aclose()
