"""Status notifications, the rate-limited message, and the local telemetry file."""

from __future__ import annotations

import json

import pytest
from lsprotocol import types

from lsp.status import STATUS_NOTIFICATION, State, Status
from lsp.telemetry import Telemetry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_status_sent_on_change_only_and_messages_rate_limited():
    sent: list[tuple[str, dict]] = []
    shown: list[types.ShowMessageParams] = []
    clock = Clock()
    status = Status(lambda m, p: sent.append((m, p)), shown.append, interval_s=180, clock=clock)
    status.set(State.READY, model="m", adapter="a")
    status.set(State.READY, model="m", adapter="a")
    status.set(State.GENERATING)
    assert [p["state"] for _, p in sent] == ["ready", "generating"]
    assert all(m == STATUS_NOTIFICATION for m, _ in sent) and sent[-1][1]["model"] == "m"
    assert status.warn("down") and not status.warn("down again")
    clock.now += 179
    assert not status.warn("still down")
    clock.now += 2
    assert status.warn("down after a while")
    assert len(shown) == 2 and shown[0].message == "inhouse: down"


def test_status_survives_a_dead_client():
    def broken(*_args):
        raise BrokenPipeError

    status = Status(broken, broken)
    status.set(State.UNREACHABLE)
    assert status.warn("x")


def test_telemetry_writes_only_when_enabled(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    off = Telemetry(False, path)
    off.record("shown", chars=3)
    assert not path.exists() and off.counts["shown"] == 1
    on = Telemetry(True, path)
    on.record("shown", id="x", chars=3)
    on.record("accepted", id="x", chars=3)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in events] == ["shown", "accepted"] and events[0]["id"] == "x"
    with pytest.raises(ValueError):
        on.record("clicked")


async def test_session_without_backend_info_uses_the_configured_format():
    """An OpenAI-compatible server with no model list still completes when the FIM format is configured."""
    from core.client import BackendInfo, CompletionRequest, CompletionResult
    from core.completion.pipeline import CompletionInput
    from core.errors import GenerationError
    from lsp.config import LspConfig
    from lsp.session import Session

    class NoInfo:
        requests: list[CompletionRequest] = []

        async def info(self) -> BackendInfo:
            raise GenerationError("no /v1/models")

        async def complete(self, req: CompletionRequest) -> CompletionResult:
            self.requests.append(req)
            return CompletionResult("a + b", 3, 1.0, "stop")

        async def aclose(self) -> None:
            pass

    backend = NoInfo()
    session = Session(LspConfig(fim_format="codellama"), backend=backend)
    answer = await session.complete("d", CompletionInput("m.py", "def add(a, b):\n    return ", "\n", "python"))
    assert answer.text == "a + b" and backend.requests[0].prompt.startswith("<PRE> ")
    with pytest.raises(GenerationError):
        await Session(LspConfig(), backend=NoInfo()).complete("d", CompletionInput("m.py", "x = ", "\n", "python"))
