"""The language server's side (lsp/adoption.py) against a real gateway: batches, retention checks by edit
distance, the company's policy, and events dropped (and counted) when the gateway is away."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.launch import free_port
from gateway.models import Event
from lsp.adoption import AdoptionReporter, retained_chars
from lsp.suggestions import Shown

URI = "file:///work/acme/a.py"


@pytest.mark.parametrize("accepted, document, offset, kept", [
    ("return 42", "def f():\n    return 42\n", 13, 9),
    ("return 42", "def f():\n    return 4\n", 13, 8),
    ("return 42", "# a new line above\ndef f():\n    return 42\n", 13, 9),  # moved by an edit above it
    ("return 42", "def f():\n    pass\n", 13, 2),  # rewritten: only what still matches by chance
    ("return 42", "", 0, 0),
    ("x = 'ä😋錯誤'", "y = 1\nx = 'ä😋錯誤'\r\n", 6, 10),
])
def test_retained_chars(accepted, document, offset, kept):
    assert retained_chars(accepted, document, offset) == kept


def _reporter(docs: dict[str, str], shown: dict[str, Shown]) -> AdoptionReporter:
    return AdoptionReporter(shown, docs.get, lambda uri: "acme/web", flush_s=0.05, time_scale=0.001)


async def _until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_events_batches_and_retention_reach_the_gateway(gateway_server):
    url, app = gateway_server((f"http://127.0.0.1:{free_port()}",), adoption_events=True)
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    token = gw.accounts.create_token("alice")
    docs = {URI: "def f():\n    return 42\n"}
    shown = {URI: Shown("s1", URI, "python", "return 42", 13)}
    r = _reporter(docs, shown)
    r.configure(url, token, "team-a")
    t0 = time.perf_counter()
    r.record("shown", {"id": "s1", "language": "python", "chars": 9, "latency_ms": 12.5})
    r.record("accepted", {"id": "s1", "language": "python", "chars": 9, "full": True})
    assert time.perf_counter() - t0 < 0.5  # only queued (a generous bound: this is not a timing test)
    # the user edits after the 30 s check (0.03 s here) and before the 2 min one (0.12 s): a timer too, so the
    # loop runs it in deadline order with the checks however late it gets to them
    asyncio.get_running_loop().call_later(0.075, docs.__setitem__, URI, "def f():\n    return 4\n")
    await _until(lambda: r.counts["sent"] == 6)
    await r.aclose()
    with Session(gw.engine) as s:
        rows = list(s.scalars(select(Event).order_by(Event.id)))
    assert [(e.kind, e.after_s, e.chars) for e in rows] == [
        ("shown", None, 9), ("accepted", None, 9), ("retained", 30, 9), ("retained", 120, 8), ("retained", 300, 8),
        ("retained", 600, 8)]
    assert {(e.repo, e.adapter, e.language, e.suggestion) for e in rows} == {("acme/web", "team-a", "python", "s1")}
    assert rows[0].latency_ms == 12.5 and not rows[1].partial
    assert r.counts["dropped"] == 0


async def test_events_are_dropped_and_counted_when_the_gateway_is_away():
    r = _reporter({}, {})
    r.configure(f"http://127.0.0.1:{free_port()}", "ih_token", None)
    for i in range(5):
        r.record("shown", {"id": f"s{i}", "chars": 3})
    await _until(lambda: r.counts["dropped"] == 5)
    assert r.counts["sent"] == 0
    await r.aclose()


async def test_the_policy_decides(gateway_server):
    url, app = gateway_server((f"http://127.0.0.1:{free_port()}",), adoption_events=False)
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    r = _reporter({}, {})
    r.configure(url, gw.accounts.create_token("alice"), None)
    r.record("shown", {"id": "s1", "chars": 3})
    await _until(lambda: r.policy is not None)
    assert r.policy["adoption_events"] is False and not r.active
    r.record("shown", {"id": "s2", "chars": 3})
    assert r.counts == {"sent": 0, "dropped": 0, "not_collected": 2}
    import httpx

    async with httpx.AsyncClient() as http:  # the gateway refuses events its policy does not collect
        resp = await http.post(f"{url}/v1/events", json={"events": [{"kind": "shown", "id": "s3"}]},
                               headers={"Authorization": f"Bearer {r._token}"})
    assert resp.status_code == 403 and "policy does not collect" in resp.json()["error"]
    unconfigured = _reporter({}, {})
    unconfigured.record("shown", {"id": "s1"})
    assert unconfigured.counts["not_collected"] == 1 and not unconfigured.active
    await r.aclose()


async def test_language_server_settings_point_completions_and_events_at_the_gateway():
    from lsp.config import LspConfig, apply_client_settings
    from lsp.handlers import create_server

    cfg, problems = apply_client_settings(LspConfig(), {"inhouse": {"gatewayUrl": "http://gw.example:8090/",
                                                                    "gatewayToken": "ih_secret"}})
    assert problems == [] and cfg.gateway_url == "http://gw.example:8090" and cfg.gateway_token == "ih_secret"
    assert "ih_secret" not in repr(cfg)  # never in a log line
    bad, problems = apply_client_settings(LspConfig(), {"gatewayUrl": "gw:8090"})
    assert bad.gateway_url is None and "`gateway_url` must be an http(s) URL" in problems[0]
    ls = create_server()
    ls.apply_settings({"gatewayUrl": "http://gw.example:8090", "gatewayToken": "ih_secret", "adapter": "team-a"},
                      "test")
    assert ls.session.backend.base == "http://gw.example:8090"
    assert ls.session.backend._headers() == {"Authorization": "Bearer ih_secret"}
    assert (ls.adoption.url, ls.adoption.adapter, ls.telemetry.sink) == ("http://gw.example:8090", "team-a",
                                                                         ls.adoption.record)
    await ls.session.aclose()
