"""The real language server (`python -m app.cli lsp`, driven by pytest-lsp) pointed at the gateway with a
user's token: its completions come through the gateway with the team's default adapter, exactly what the model
server gives for that adapter, and its adoption events reach the gateway's database (no code in them)."""

from __future__ import annotations

import asyncio
import json

import pytest
from lsprotocol import types
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from core.completion.pipeline import CompletionInput
from gateway.audit import rows as audit_rows
from gateway.models import Event
from lsp.config import LspConfig
from lsp.suggestions import ACCEPTED_COMMAND
from lsp.session import Session
from tests.lsp.conftest import inline_params, lsp_client, open_doc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

OVERRIDES = {"promptOrder": "psm", "healing": True, "maxTokens": 6, "maxTokensSingleLine": 6}


async def test_language_server_completes_and_reports_through_the_gateway(model_server, gateway_server,
                                                                         tiny_model_dir, tmp_path):
    upstream = model_server()
    url, app = gateway_server((upstream,), adoption_events=True)
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    gw.accounts.add_team("red")
    gw.accounts.add_adapter("team-a")
    gw.accounts.add_member("red", "alice")
    gw.accounts.allow("red", "team-a", default=True)
    token = gw.accounts.create_token("alice")

    direct = Session(LspConfig(backend_url=upstream, adapter="team-a", prompt_order="psm", healing=True, max_tokens=6,
                               max_tokens_single_line=6, tokenizer=str(tiny_model_dir)))
    try:
        expected = (await direct.complete("ref", CompletionInput("main.py", "import math\nx = compute(", ")\n",
                                                                 "python"))).text
    finally:
        await direct.aclose()
    assert expected, "the tiny model with team-a gives a suggestion here"

    options = {"gatewayUrl": url, "gatewayToken": token, "tokenizer": str(tiny_model_dir), "indexWorkspace": False,
               **OVERRIDES}
    async with lsp_client(options, tmp_path) as client:
        await client.wait_for_status("ready")
        uri = open_doc(client, tmp_path / "main.py", "import math\nx = compute()\n", "python")
        result = await client.text_document_inline_completion_async(inline_params(uri, 1, 12))
        [item] = result.items
        assert item.insert_text == expected  # the team's default adapter, applied by the gateway
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=ACCEPTED_COMMAND, arguments=item.command.arguments))
        for _ in range(300):  # the language server sends its batch within its 5 s flush interval
            with DbSession(gw.engine) as s:
                kinds = sorted(s.scalars(select(Event.kind)))
            if kinds == ["accepted", "shown"]:
                break
            await asyncio.sleep(0.1)
        assert kinds == ["accepted", "shown"]
    with DbSession(gw.engine) as s:
        events = list(s.scalars(select(Event)))
    # the editor named no adapter: its events count for the adapter the gateway gave it
    assert {(e.team, e.adapter, e.language, e.chars) for e in events} == {("red", "team-a", "python", len(expected))}
    assert all(e.repo == "ws" for e in events)  # the workspace folder's name
    gw.audit.flush()
    routes = [(r["actor"], r["route"], r["adapter"], r["status"]) for r in audit_rows(gw.engine, kind="request")]
    assert ("alice", "/generate", "team-a", 200) in routes and ("alice", "/info", None, 200) in routes
    assert "compute" not in json.dumps([r for r in audit_rows(gw.engine)])  # no code in the audit log either
