"""The `$/inhouse/status` state over a request's whole life: it goes back to ready (or stays unreachable or
disabled) whenever no request is in flight, whatever way the request ended; a slow backend is not an
unreachable one. The real server object, with a scripted session in place of the backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types
from pygls.workspace import Workspace

from core.client import BackendInfo
from core.completion.pipeline import CompletionInput
from core.errors import BackendTimeoutError, BackendUnavailableError, GenerationError
from lsp.config import LspConfig
from lsp.server import InhouseLanguageServer
from lsp.session import Answer
from lsp.status import State, Status

pytestmark = pytest.mark.timeout(20)


class ScriptedSession:
    """Stands in for `Session`: announces the backend request, then waits for the test to end it."""

    def __init__(self) -> None:
        self.info = BackendInfo("tiny", "starcoder", 1000, 1200, (), True)
        self.requested = asyncio.Event()
        self.outcome: asyncio.Future = asyncio.get_running_loop().create_future()
        self.calls = 0

    async def complete(self, doc: str, inp: CompletionInput, *, end: int | None = None, on_request=None,
                       suggestion_id: str | None = None) -> Answer:
        self.calls += 1
        if on_request is not None:
            on_request()
        self.requested.set()
        result = await self.outcome
        if isinstance(result, BaseException):
            raise result
        return result

    def profile_status(self) -> tuple[str | None, str | None]:
        return "starcoder SPM", None

    async def aclose(self) -> None:
        return None


def make_server(**cfg: Any) -> tuple[InhouseLanguageServer, list[dict], list[types.ShowMessageParams]]:
    server = InhouseLanguageServer(LspConfig(debounce_ms=0, index_workspace=False, **cfg))
    sent: list[dict] = []
    shown: list[types.ShowMessageParams] = []
    server.status = Status(lambda _m, p: sent.append(p), shown.append, interval_s=180)
    server.status.set(State.READY, model="tiny")
    return server, sent, shown


INP = CompletionInput("a.py", "x = compute(", ")\n", "python")


async def start(server: InhouseLanguageServer, session: ScriptedSession) -> asyncio.Task:
    task = asyncio.ensure_future(server._answer(session, "file:///a.py", INP, len(INP.prefix)))
    await asyncio.wait_for(session.requested.wait(), 5)
    assert server.status.state is State.GENERATING
    return task


async def test_success_returns_to_ready():
    server, sent, _ = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    session.outcome.set_result(Answer("1)", False, "ok"))
    assert (await task).text == "1)"
    assert [p["state"] for p in sent] == ["ready", "generating", "ready"]
    assert server.generating == 0


async def test_cancelled_request_returns_to_ready():
    server, sent, shown = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.status.state is State.READY, sent
    assert server.generating == 0 and not shown


async def test_generation_error_returns_to_ready():
    server, sent, shown = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    session.outcome.set_result(GenerationError("backend failed (500): boom"))
    assert await task is None
    assert server.status.state is State.READY, sent
    assert len(shown) == 1


async def test_unexpected_exception_returns_to_ready():
    server, sent, _ = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    session.outcome.set_result(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        await task
    assert server.status.state is State.READY, sent


async def test_timeout_is_slow_not_unreachable():
    server, sent, shown = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    session.outcome.set_result(BackendTimeoutError("http://127.0.0.1:8080 timed out after 5.0s"))
    assert await task is None
    assert server.status.state is State.READY, sent
    assert "unreachable" not in [p["state"] for p in sent]
    assert "slow" in (server.status.detail or "")
    assert len(shown) == 1 and "slow" in shown[0].message
    # The next request that works clears the note; a second timeout does not show a second message soon.
    session2 = ScriptedSession()
    task = await start(server, session2)
    session2.outcome.set_result(BackendTimeoutError("timed out again"))
    await task
    assert len(shown) == 1
    session3 = ScriptedSession()
    task = await start(server, session3)
    session3.outcome.set_result(Answer("1)", False, "ok"))
    await task
    assert server.status.state is State.READY and server.status.detail is None


async def test_connection_refused_is_unreachable():
    server, sent, shown = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    session.outcome.set_result(BackendUnavailableError("cannot reach http://127.0.0.1:9: connection refused"))
    assert await task is None
    assert server.status.state is State.UNREACHABLE
    assert len(shown) == 1 and "unreachable" in shown[0].message
    # Back to ready once the backend answers again.
    session2 = ScriptedSession()
    task = await start(server, session2)
    session2.outcome.set_result(Answer("1)", False, "ok"))
    await task
    assert server.status.state is State.READY


async def test_disabled_while_generating_stays_disabled():
    server, sent, _ = make_server()
    session = ScriptedSession()
    task = await start(server, session)
    server.cfg = LspConfig(enabled=False)
    task.cancel()
    server.status.set(State.DISABLED)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.status.state is State.DISABLED


async def test_superseded_request_returns_to_ready():
    server, sent, _ = make_server()
    server.protocol._workspace = Workspace(None)
    uri = "file:///w/a.py"
    server.workspace.put_text_document(types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                              text="x = compute(\n"))
    first = ScriptedSession()
    server.session = first  # type: ignore[assignment]
    older = asyncio.ensure_future(server.suggest(uri, types.Position(0, 12)))
    await asyncio.wait_for(first.requested.wait(), 5)
    assert server.status.state is State.GENERATING
    second = ScriptedSession()
    server.session = second  # type: ignore[assignment]
    newer = asyncio.ensure_future(server.suggest(uri, types.Position(0, 11)))
    assert await asyncio.wait_for(older, 5) is None  # superseded: answers empty
    await asyncio.wait_for(second.requested.wait(), 5)
    second.outcome.set_result(Answer("1)", False, "ok"))
    found = await asyncio.wait_for(newer, 5)
    assert found is not None and found[0] == "1)"
    await asyncio.sleep(0)
    assert server.status.state is State.READY, sent
    assert server.generating == 0 and not server.inflight
