"""The language server's side of stored suggestions: its completions carry `X-Inhouse-Suggestion-Id` only when
the gateway's policy stores suggestions (the real language server as a subprocess, a real gateway), the id is
the one its adoption events use, and the outcome it posts (`final`, lsp.adoption.final_text) lands in the row."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

import pytest
from lsprotocol import types
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from core.completion.pipeline import CompletionInput
from gateway.models import StoredSuggestion
from lsp.adoption import AdoptionReporter, final_text
from lsp.config import LspConfig
from lsp.session import Session
from lsp.suggestions import ACCEPTED_COMMAND, Shown
from server.threaded import serve_in_thread
from tests.lsp.conftest import inline_params, lsp_client, open_doc

URI = "file:///work/acme/a.py"
OVERRIDES = {"promptOrder": "psm", "healing": True, "maxTokens": 6, "maxTokensSingleLine": 6}


@pytest.mark.parametrize("accepted, text, document, offset, before, after, final", [
    # accepted and kept; accepted then edited; moved down by an edit above it
    (True, "return 42", "def f():\n    return 42\n", 13, "", "", "return 42"),
    (True, "return 42", "def f():\n    return 43\n", 13, "", "", "return 43"),
    (True, "return 42", "# new\ndef f():\n    return 42\n", 13, "", "", "return 42"),
    # dismissed: typed something else (the old text after the cursor bounds it); typed nothing; typed more than
    # the suggestion's length; the place moved down; its place is gone
    (False, "return 42", "def f():\n    return 7\n", 13, "def f():\n    ", "\n", "return 7"),
    (False, "return 42", "def f():\n    \n", 13, "def f():\n    ", "\n", ""),
    (False, "x", "def f():\n    yield 1\n", 13, "def f():\n    ", "\n", "y"),
    (False, "return 42", "# new\ndef f():\n    return 7\n", 13, "def f():\n    ", "\n", "return 7"),
    (False, "return 42", "something else entirely", 13, "def f():\n    ", "\n", None),
    (False, "return 42", "def f():\r\n    ret\r\n  x", 14, "def f():\r\n    ", "\r\n  x", "ret"),
])
def test_final_text(accepted, text, document, offset, before, after, final):
    shown = Shown("s1", URI, "python", text, offset, before=before, after=after)
    assert final_text(shown, document, accepted) == final


def _recording(app, seen: list[tuple[str, dict[str, str]]]):
    """The ASGI app, with every HTTP request's path and headers noted."""

    async def wrapper(scope, receive, send):
        if scope["type"] == "http":
            seen.append((scope["path"], {k.decode().lower(): v.decode() for k, v in scope["headers"]}))
        await app(scope, receive, send)

    return wrapper


@contextlib.contextmanager
def _gateway(upstream: str, tmp_path, **fields):
    from gateway.app import create_app
    from gateway.config import GatewayConfig

    seen: list[tuple[str, dict[str, str]]] = []
    app = create_app(GatewayConfig(upstreams=(upstream,), database_url=f"sqlite:///{tmp_path / 'g.db'}",
                                   health_interval_s=0.2, **fields))
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    gw.accounts.add_team("red")
    gw.accounts.add_adapter("team-a")
    gw.accounts.add_member("red", "alice")
    gw.accounts.allow("red", "team-a", default=True)
    token = gw.accounts.create_token("alice")
    with serve_in_thread(_recording(app, seen)) as url:
        yield url, gw, token, seen


@pytest.mark.e2e
@pytest.mark.timeout(180)
@pytest.mark.parametrize("store", [True, False])
async def test_language_server_sends_the_id_only_when_the_policy_stores(model_server, tiny_model_dir, tmp_path,
                                                                        store):
    upstream = model_server()
    with _gateway(upstream, tmp_path, adoption_events=True, store_suggestions=store) as (url, gw, token, seen):
        options = {"gatewayUrl": url, "gatewayToken": token, "tokenizer": str(tiny_model_dir),
                   "indexWorkspace": False, **OVERRIDES}
        async with lsp_client(options, tmp_path) as client:
            await client.wait_for_status("ready")
            uri = open_doc(client, tmp_path / "main.py", "import math\nx = compute()\n", "python")
            result = await client.text_document_inline_completion_async(inline_params(uri, 1, 12))
            [item] = result.items
            shown_id = item.command.arguments[0]["id"]
            await client.workspace_execute_command_async(types.ExecuteCommandParams(
                command=ACCEPTED_COMMAND, arguments=item.command.arguments))
        generate = [h for path, h in seen if path == "/generate"]
        assert len(generate) == 1 and any(p == "/v1/policy" for p, _ in seen)
        posted = [p for p, _ in seen if p == "/v1/suggestions/outcome"]
        assert posted == []  # 10 minutes after the acceptance: the session ended long before
        if not store:
            assert "x-inhouse-suggestion-id" not in generate[0]
            return
        assert generate[0]["x-inhouse-suggestion-id"] == shown_id  # the id the adoption events use
        for _ in range(100):
            with DbSession(gw.engine) as s:
                rows = list(s.scalars(select(StoredSuggestion)))
            if rows:
                break
            await asyncio.sleep(0.05)
        [row] = rows
        assert row.suggestion == shown_id and row.adapter == "team-a" and row.team == "red"
        assert row.prompt.startswith("<fim_prefix>") and "import math" in row.prompt


async def test_outcomes_are_posted_after_the_checks_and_only_under_the_policy(model_server, tiny_model_dir,
                                                                              tmp_path):
    upstream = model_server()
    with _gateway(upstream, tmp_path, store_suggestions=True) as (url, gw, token, seen):
        # two completions stored through the gateway, as the language server sends them
        session = Session(LspConfig(gateway_url=url, gateway_token=token, prompt_order="psm", healing=False,
                                    max_tokens=6, max_tokens_single_line=6, tokenizer=str(tiny_model_dir)))
        try:
            answers = [await session.complete(f"d{i}", CompletionInput("a.py", f"def f{i}():\n    ", "\n", "python"),
                                              suggestion_id=f"sid-{i}") for i in range(2)]
        finally:
            await session.aclose()
        assert all(a.suggestion_id == f"sid-{i}" and a.text for i, a in enumerate(answers))
        docs = {URI: "def f():\n    " + answers[0].text + "  # edited\n"}
        shown = {URI: Shown("sid-0", URI, "python", answers[0].text, 13, stored=True, before="def f():\n    ",
                            after="\n"),
                 URI + "2": Shown("sid-1", URI + "2", "python", answers[1].text, 13, stored=True,
                                  before="def f():\n    ", after="\n")}
        docs[URI + "2"] = "def f():\n    pass\n"
        r = AdoptionReporter(shown, docs.get, lambda uri: None, flush_s=0.05, time_scale=0.001)
        r.configure(url, token, None)
        await r.refresh_policy()
        assert r.stores_suggestions and not r.active  # events are off, storing is on
        r.record("accepted", {"id": "sid-0", "chars": len(answers[0].text), "full": True})
        r.record("dismissed", {"id": "sid-1", "chars": len(answers[1].text)})
        deadline = time.monotonic() + 20
        while r.outcome_counts["sent"] < 2:
            assert time.monotonic() < deadline and r.outcome_counts["dropped"] == 0, r.outcome_counts
            await asyncio.sleep(0.02)
        await r.aclose()
        with DbSession(gw.engine) as s:
            rows = {row.suggestion: row for row in s.scalars(select(StoredSuggestion))}
        assert rows["sid-0"].final == answers[0].text and rows["sid-0"].shown == answers[0].text
        assert rows["sid-1"].final == "pass"[:len(answers[1].text)] and rows["sid-1"].shown == answers[1].text

        # the same reporter against a gateway whose policy does not store: it never posts an outcome
        gw.cfg = dataclasses.replace(gw.cfg, store_suggestions=False)
        seen.clear()
        r = AdoptionReporter(shown, docs.get, lambda uri: None, flush_s=0.05, time_scale=0.001)
        r.configure(url, token, None)
        await r.refresh_policy()
        assert not r.stores_suggestions
        r.record("accepted", {"id": "sid-0", "chars": 3, "full": True})
        r.record("dismissed", {"id": "sid-1", "chars": 3})
        await asyncio.sleep(0.8)  # well past the scaled checks (0.6 s and 0.03 s)
        await r.aclose()
        assert [p for p, _ in seen if p != "/v1/policy"] == [] and r.outcome_counts["sent"] == 0
