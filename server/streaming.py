"""How a generation reaches the client: run to its end, or streamed as server-sent events as tokens come.

Shared by the TGI routes (`server.app`) and the OpenAI-compatible ones (`server.openai`); each passes its own
renderer for stream events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core.errors import InhouseError
from server import errors
from server.generation import FinishEvent, TokenEvent
from server.state import ClientDisconnected, ServerState
from server.validation import Prepared

# render(token, finish): one SSE event's text, for a token (finish None) or for the last one (finish set)
Renderer = Callable[[TokenEvent | None, FinishEvent | None], str]


async def run_to_end(state: ServerState, prepared: Prepared, request: Request) -> FinishEvent | Response:
    """Generate to the end; a disconnected client gets its generation stopped (and a 499 nobody reads)."""
    async with state.generation(prepared) as handle:
        try:
            return await state.wait(handle, request)
        except ClientDisconnected:
            state.metrics.failure("disconnected")
            return Response(status_code=499)


class _GenerationStream(StreamingResponse):
    """A stream that releases its generation however the response ends (even if it never started)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()


async def open_stream(state: ServerState, prepared: Prepared, render: Renderer) -> StreamingResponse:
    """Start a generation and stream its events, each rendered by `render(token, finish)` into SSE text.

    The generation is submitted before the response starts, so a 429 is a plain HTTP error; when the client
    disconnects, the response ends and the generation is cancelled.
    """
    cm = state.generation(prepared)
    handle = await cm.__aenter__()
    released = False

    async def release() -> None:
        nonlocal released
        if not released:
            released = True
            await cm.__aexit__(None, None, None)

    async def body() -> AsyncIterator[str]:
        held: TokenEvent | None = None
        try:
            async for ev in handle.events():
                if isinstance(ev, TokenEvent):
                    if held is not None:
                        yield render(held, None)
                    held = ev
                else:
                    yield render(held, ev)
        except InhouseError as exc:
            yield errors.sse_error(exc)
        finally:
            await release()

    return _GenerationStream(body(), release, media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
