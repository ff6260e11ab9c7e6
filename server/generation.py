"""What a request asks of an engine and what comes back: the types both engines share (no torch here).

`GenerationRequest` is built by `server.validation.prepare`; an engine (`server.engine.Engine` on torch,
`server.llamacpp.LlamaCppEngine` on llama.cpp) answers each with a `Handle` on which `TokenEvent`s and one
`FinishEvent` (or an `ErrorEvent`) arrive, on the request's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import GenerationError, InhouseError
from core.healing import strip_healed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None

    @property
    def sampling(self) -> bool:
        warped = ((self.temperature is not None and self.temperature != 1.0) or bool(self.top_k)
                  or (self.top_p is not None and self.top_p < 1.0))
        return self.do_sample or warped


@dataclass
class GenerationRequest:
    input_ids: list[int]
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    sampling: SamplingParams = field(default_factory=SamplingParams)
    adapter_id: str | None = None
    adapter_path: Path | None = None
    required_start: str = ""      # the output must begin with this text (token healing, grammar)
    hidden_start: str = ""        # the part of required_start not returned (server-side token healing)
    decoder_input_details: bool = False


@dataclass(frozen=True)
class TokenEvent:
    index: int
    id: int
    text: str
    logprob: float
    special: bool


@dataclass(frozen=True)
class FinishEvent:
    generated_text: str
    finish_reason: str
    generated_tokens: int
    seed: int | None
    input_length: int
    tokens: tuple[TokenEvent, ...]
    prefill: tuple[tuple[int, str, float | None], ...]
    reused_tokens: int


@dataclass(frozen=True)
class ErrorEvent:
    error: InhouseError


class Handle:
    """One request's side of the engine: events arrive on `events()`; `cancel()` stops its generation."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self._loop = loop
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.enqueued_at = time.monotonic()

    def emit(self, event: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the request's event loop is gone: nobody listens any more
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()

    async def events(self):
        """Token events, then one FinishEvent; an ErrorEvent's error is raised."""
        while True:
            event = await self._events.get()
            if isinstance(event, ErrorEvent):
                raise event.error
            yield event
            if isinstance(event, FinishEvent):
                return

    async def result(self) -> FinishEvent:
        async for event in self.events():
            if isinstance(event, FinishEvent):
                return event
        raise GenerationError("generation ended without a result")


def fail_request(handle: Handle, metrics: Any, exc: Exception, what: str) -> None:
    """Report one request's failure on its own handle, the other requests going on: an InhouseError as it is
    (its HTTP status follows its type), anything else logged and answered as a GenerationError. Call it from
    the `except` block that caught `exc`."""
    if isinstance(exc, InhouseError):
        metrics.failure(exc.error_type)
        handle.emit(ErrorEvent(exc))
        return
    log.exception("%s failed", what)
    metrics.failure("generation")
    handle.emit(ErrorEvent(GenerationError(f"generation failed: {type(exc).__name__}: {exc}")))


def visible_text(text: str, hidden: str) -> str:
    """The text a request returns so far: without the hidden healed start (`hidden_start`), and nothing while
    the output is still re-typing what was before the cursor."""
    if not hidden:
        return text
    if hidden.startswith(text):
        return ""
    return strip_healed(text, hidden)
