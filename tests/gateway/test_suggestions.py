"""Stored suggestions (`store_suggestions`): nothing kept while the policy is off; with it on, plain and streamed
TGI and OpenAI completions sent with `X-Inhouse-Suggestion-Id` are kept, the outcome route takes the user's own
only, and `inhouse admin suggestions export` writes the preference pairs (retention purges old rows)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts import Accounts
from gateway.db import open_database
from gateway.models import StoredSuggestion
from gateway.suggestions import Store, preference_pairs, purge
from tests.gateway.conftest import wait_for

PROMPT = "<fim_prefix>def add(a, b):\n    return<fim_suffix>\n<fim_middle>"


def _stack(model_server, gateway_server, **fields):
    upstream = model_server()
    url, app = gateway_server((upstream,), **fields)
    gw = app.state.gateway
    a: Accounts = gw.accounts
    for name in ("alice", "bob"):
        a.add_user(name)
    a.add_team("red")
    a.add_adapter("team-a")
    for user in ("alice", "bob"):
        a.add_member("red", user)
    a.allow("red", "team-a", default=True)
    return url, upstream, gw, {u: a.create_token(u) for u in ("alice", "bob")}


def _auth(token: str, sid: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if sid is not None:
        headers["X-Inhouse-Suggestion-Id"] = sid
    return headers


def _stored(gw) -> dict[str, StoredSuggestion]:
    with Session(gw.engine) as s:
        return {r.suggestion: r for r in s.scalars(select(StoredSuggestion))}


async def test_nothing_is_stored_while_the_policy_is_off(model_server, gateway_server):
    url, _upstream, gw, tokens = _stack(model_server, gateway_server)
    async with httpx.AsyncClient(timeout=60) as http:
        policy = (await http.get(f"{url}/v1/policy", headers=_auth(tokens["alice"]))).json()
        assert policy["store_suggestions"] is False
        r = await http.post(f"{url}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 3}},
                            headers=_auth(tokens["alice"], "s1"))
        assert r.status_code == 200
        r = await http.post(f"{url}/v1/suggestions/outcome", json={"id": "s1", "final": "x"},
                            headers=_auth(tokens["alice"]))
        assert r.status_code == 403 and "store suggestions" in r.json()["error"]
    time.sleep(0.3)
    assert _stored(gw) == {}


async def test_completions_are_stored_with_their_outcome_and_exported_as_pairs(model_server, gateway_server,
                                                                               tmp_path, monkeypatch, capsys):
    url, upstream, gw, tokens = _stack(model_server, gateway_server, store_suggestions=True)
    tgi = {"inputs": PROMPT, "parameters": {"max_new_tokens": 5}}
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.get(f"{url}/v1/policy", headers=_auth(tokens["alice"]))).json()["store_suggestions"]
        direct = (await http.post(f"{upstream}/generate", json={**tgi, "parameters": {
            "max_new_tokens": 5, "adapter_id": "team-a"}})).json()["generated_text"]
        r = await http.post(f"{url}/generate", json=tgi, headers=_auth(tokens["alice"], "plain-1"))
        assert r.status_code == 200 and r.json()["generated_text"] == direct
        async with http.stream("POST", f"{url}/generate_stream", json=tgi,
                               headers=_auth(tokens["alice"], "stream-1")) as s:
            assert s.status_code == 200
            [line async for line in s.aiter_lines()]
        r = await http.post(f"{url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 5},
                            headers=_auth(tokens["bob"], "openai-1"))
        assert r.status_code == 200
        async with http.stream("POST", f"{url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 5,
                                                                      "stream": True},
                               headers=_auth(tokens["bob"], "openai-2")) as s:
            [line async for line in s.aiter_lines()]
        await http.post(f"{url}/generate", json=tgi, headers=_auth(tokens["alice"]))  # no id: not stored
        r = await http.post(f"{url}/generate", json=tgi, headers=_auth(tokens["alice"], "bad id!"))
        assert r.status_code == 422 and "X-Inhouse-Suggestion-Id" in r.json()["error"]
        wait_for(lambda: len(_stored(gw)) == 4, what="four stored suggestions")
        rows = _stored(gw)
        for sid in ("plain-1", "stream-1", "openai-1", "openai-2"):
            row = rows[sid]
            assert row.prompt == PROMPT and row.generated == direct, sid
            assert row.adapter == "team-a" and row.team == "red" and row.final is None
        assert rows["stream-1"].route == "/generate_stream" and rows["openai-2"].route == "/v1/completions"

        # outcomes: only the user the suggestion was made for; unknown ids are 404; bad bodies 422
        outcome = f"{url}/v1/suggestions/outcome"
        r = await http.post(outcome, json={"id": "plain-1", "final": "a + b"}, headers=_auth(tokens["bob"]))
        assert r.status_code == 403 and "another user" in r.json()["error"]
        r = await http.post(outcome, json={"id": "nope", "final": "x"}, headers=_auth(tokens["bob"]))
        assert r.status_code == 404
        r = await http.post(outcome, json={"id": "plain-1", "final": 3}, headers=_auth(tokens["alice"]))
        assert r.status_code == 422 and "final" in r.json()["error"]
        r = await http.post(outcome, json={"id": "plain-1"}, headers=_auth(tokens["alice"]))
        assert r.status_code == 422 and "`final` is required" in r.json()["error"]
        for sid, final, shown, token in (("plain-1", " a + b", " a - b", "alice"),  # edited: a pair
                                         ("stream-1", direct, None, "alice"),  # kept as generated: no pair
                                         ("openai-1", "", direct, "bob")):  # nothing typed: no pair
            body = {"id": sid, "final": final, **({"shown": shown} if shown is not None else {})}
            r = await http.post(outcome, json=body, headers=_auth(tokens[token]))
            assert r.status_code == 200 and r.json() == {"stored": True}

    from app import cli

    out = tmp_path / "pairs.jsonl"
    monkeypatch.setattr(cli, "_register", lambda: None)
    import typer

    from gateway.cli import app as admin_app

    root = typer.Typer()
    root.add_typer(admin_app, name="admin")
    monkeypatch.setattr(cli, "app", root)
    db = gw.cfg.database_url
    code = cli.main(["admin", "suggestions", "export", "--team", "red", "--out", str(out), "--json", "--db", db])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out) == {"team": "red", "out": str(out), "stored": 4, "with_outcome": 3, "pairs": 1}
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert pairs == [{"prompt": PROMPT, "chosen": " a + b", "rejected": " a - b", "id": "plain-1",
                      "adapter": "team-a"}]
    code = cli.main(["admin", "suggestions", "export", "--team", "red", "--out", str(out), "--since", "2999-01-01",
                     "--db", db])
    assert code == 0 and out.read_text() == "" and "0 stored" in capsys.readouterr().err
    code = cli.main(["admin", "suggestions", "export", "--team", "red", "--out", str(out), "--since", "yesterday",
                     "--db", db])
    assert code != 0 and "--since" in capsys.readouterr().err
    assert not list(tmp_path.glob(".pairs.jsonl.*"))  # no temporary file left behind


def test_retention_deletes_old_rows_on_write_and_by_purge(db_url):
    from gateway.suggestions import Capture

    engine = open_database(db_url)
    store = Store(engine, retention_days=1.0)
    now = time.time()
    for i, age_days in enumerate((3.0, 0.5, 2.0)):
        store._purged_at = now  # no purge on these writes
        store.save(Capture(f"s{i}", 1, "red", "team-a", "/generate", "p", now - age_days * 86400), "g")
    assert store.save(Capture("s1", 2, "red", None, "/generate", "other", now), "g") is False  # first row kept
    assert purge(engine, 1.0) == 2
    with Session(engine) as s:
        assert [r.suggestion for r in s.scalars(select(StoredSuggestion))] == ["s1"]
    store._purged_at = 0.0  # the next write purges: s1 is older than a retention of 0.1 day
    store.retention_days = 0.1
    store._purged_at = 0.0
    store.save(Capture("s3", 1, "red", "team-a", "/generate", "p", now), "g")
    with Session(engine) as s:
        assert [r.suggestion for r in s.scalars(select(StoredSuggestion))] == ["s3"]
    rows, counts = preference_pairs(engine, "red")
    assert rows == [] and counts.to_dict() == {"stored": 1, "with_outcome": 0, "pairs": 0}
    engine.dispose()


@pytest.mark.parametrize("value", [0, -1])
def test_retention_must_be_positive(value):
    from core.errors import ConfigError
    from gateway.config import GatewayConfig

    with pytest.raises(ConfigError, match="suggestions_retention_days"):
        GatewayConfig(suggestions_retention_days=value)
