"""Gateway + embedded model server (tiny model, two team adapters) + two users in two teams, over real HTTP on
127.0.0.1: adapter access, defaults, the error table, streams, cancellation, audit rows and metrics."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway.accounts import Accounts
from gateway.audit import rows as audit_rows

PROMPT = "def add(a, b):\n    return"


@pytest.fixture
def stack(model_server, gateway_server):
    """(gateway URL, model server URL, Gateway, tokens) with alice in red (team-a) and bob in blue (team-b)."""
    upstream = model_server()
    url, app = gateway_server((upstream,), adoption_events=True, max_concurrent_per_user=3,
                              rate_limit_per_minute=1000)
    gw = app.state.gateway
    a: Accounts = gw.accounts
    for name in ("alice", "bob"):
        a.add_user(name)
    for team, adapter, user in (("red", "team-a", "alice"), ("blue", "team-b", "bob")):
        a.add_team(team)
        a.add_adapter(adapter)
        a.add_member(team, user)
        a.allow(team, adapter, default=True)
    a.add_adapter("team-z")  # known to the gateway, allowed to nobody
    tokens = {u: a.create_token(u) for u in ("alice", "bob")}
    return url, upstream, gw, tokens


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_access_defaults_and_errors_through_the_gateway(stack):
    url, upstream, gw, tokens = stack
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 6, "details": True}}
    async with httpx.AsyncClient(timeout=60) as http:
        direct = {a: (await http.post(f"{upstream}/generate", json={
            "inputs": PROMPT, "parameters": {"max_new_tokens": 6, "adapter_id": a}})).json()["generated_text"]
            for a in ("team-a", "team-b")}
        assert direct["team-a"] != direct["team-b"]  # the adapters differ, so the defaults are visible
        r = await http.post(f"{url}/generate", json=body, headers=_auth(tokens["alice"]))
        assert r.status_code == 200 and r.json()["generated_text"] == direct["team-a"]  # red's default
        assert r.headers["x-generated-tokens"] == "6"
        r = await http.post(f"{url}/generate", json=body, headers=_auth(tokens["bob"]))
        assert r.json()["generated_text"] == direct["team-b"]
        # another team's adapter, an unknown one, a token in the wrong header, no token, a bad token
        other = {"inputs": PROMPT, "parameters": {"max_new_tokens": 2, "adapter_id": "team-b"}}
        r = await http.post(f"{url}/generate", json=other, headers=_auth(tokens["alice"]))
        assert r.status_code == 403 and r.json()["error_type"] == "forbidden" and "team-b" in r.json()["error"]
        r = await http.post(f"{url}/generate", json={"inputs": "x", "parameters": {"adapter_id": "nope"}},
                            headers=_auth(tokens["alice"]))
        assert r.status_code == 422 and "`adapter_id` must be an adapter the gateway knows" in r.json()["error"]
        r = await http.post(f"{url}/generate", json=body, headers={"X-Api-Key": tokens["alice"]})
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"] and "x-api-key" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = await http.post(f"{url}/generate", json=body, headers={"Authorization": tokens["alice"]})
        assert r.status_code == 401 and "must be `Bearer <token>`" in r.json()["error"]
        r = await http.post(f"{url}/generate?token={tokens['alice']}", json=body)
        assert r.status_code == 401 and "in the URL" in r.json()["error"]
        r = await http.post(f"{url}/generate", json=body, headers=_auth("ih_wrong"))
        assert r.status_code == 401 and r.json()["error"] == "unknown token"
        # the upstream's error table passes through unchanged (422 from the model server)
        r = await http.post(f"{url}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 0}},
                            headers=_auth(tokens["alice"]))
        direct_err = await http.post(f"{upstream}/generate", json={"inputs": PROMPT, "parameters": {
            "max_new_tokens": 0, "adapter_id": "team-a"}})
        assert (r.status_code, r.json()) == (direct_err.status_code, direct_err.json()) and r.status_code == 422
        r = await http.post(f"{url}/generate", content=b"{not json", headers=_auth(tokens["alice"]))
        assert r.status_code == 422 and "must be JSON" in r.json()["error"]
        # OpenAI route: no model -> the team default; the base model's id -> the base model
        r = await http.post(f"{url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 6},
                            headers=_auth(tokens["alice"]))
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == direct["team-a"]
        models = (await http.get(f"{url}/v1/models", headers=_auth(tokens["alice"]))).json()["data"]
        assert [m["id"] for m in models if m.get("parent")] == ["team-a"]
        info = (await http.get(f"{url}/info", headers=_auth(tokens["bob"]))).json()
        assert info["adapters"] == ["team-b"] and info["default_adapter"] == "team-b" and info["fim_format"]
        # a revoked token is refused on its very next request
        bob_id = next(t["id"] for t in gw.accounts.list_tokens() if t["user"] == "bob")
        gw.accounts.revoke_token(bob_id)
        r = await http.post(f"{url}/generate", json=body, headers=_auth(tokens["bob"]))
        assert r.status_code == 401 and "revoked" in r.json()["error"]
        metrics = (await http.get(f"{url}/metrics")).text
    gw.audit.flush()
    rows = audit_rows(gw.engine, kind="request")
    ok = [r for r in rows if r["status"] == 200 and r["route"] == "/generate"]
    assert {(r["actor"], r["team"], r["adapter"]) for r in ok} == {("alice", "red", "team-a"), ("bob", "blue", "team-b")}
    assert all(r["upstream"] == upstream and r["generated_tokens"] == 6 and r["latency_ms"] > 0 for r in ok)
    statuses = sorted(r["status"] for r in rows if r["route"] == "/generate")
    assert statuses == sorted([200, 200, 403, 422, 401, 401, 401, 401, 422, 422, 401])
    assert next(r for r in rows if r["status"] == 403)["adapter"] is None  # refused before any upstream
    assert 'inhouse_gateway_requests_total{adapter="team-a",route="/generate",status="200",team="red"} 1.0' in metrics
    assert all(tokens["alice"] not in json.dumps(r) for r in rows)


async def test_streams_pass_through_and_disconnect_cancels_upstream(stack):
    url, upstream, gw, tokens = stack
    async with httpx.AsyncClient(timeout=60) as http:
        body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 5}}
        whole = (await http.post(f"{url}/generate", json=body, headers=_auth(tokens["alice"]))).json()
        events = []
        async with http.stream("POST", f"{url}/generate_stream", json=body, headers=_auth(tokens["alice"])) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            async for line in s.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        assert len(events) == 5 and events[-1]["generated_text"] == whole["generated_text"]
        chunks = []
        async with http.stream("POST", f"{url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 5,
                                                                      "stream": True},
                               headers=_auth(tokens["alice"])) as s:
            async for line in s.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append(json.loads(line[6:])["choices"][0]["text"])
        assert "".join(chunks) == whole["generated_text"]
        # the client leaves after the first token: the model server stops generating
        long = {"inputs": PROMPT, "parameters": {"max_new_tokens": 1500}}
        async with http.stream("POST", f"{url}/generate_stream", json=long, headers=_auth(tokens["alice"])) as s:
            assert (await anext(s.aiter_lines())).startswith("data:")
        for _ in range(200):
            m = (await http.get(f"{upstream}/metrics")).text
            if 'tgi_request_failure{err="cancelled"} 1.0' in m and "tgi_batch_current_size 0.0" in m:
                break
            await asyncio.sleep(0.05)
        assert 'tgi_request_failure{err="cancelled"} 1.0' in m
        # the same for a plain request whose client gives up
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{url}/generate", json=long, headers=_auth(tokens["alice"]), timeout=0.5)
        for _ in range(200):
            m = (await http.get(f"{upstream}/metrics")).text
            if 'tgi_request_failure{err="disconnected"} 1.0' in m:
                break
            await asyncio.sleep(0.05)
        assert 'tgi_request_failure{err="disconnected"} 1.0' in m
    gw.audit.flush()
    streamed = [r for r in audit_rows(gw.engine, kind="request") if r["route"] == "/generate_stream"]
    assert sorted(r["status"] for r in streamed) == [200, 499]
    assert next(r for r in streamed if r["status"] == 200)["generated_tokens"] == 5


async def test_per_user_limit_is_429_and_others_are_unaffected(stack):
    url, _upstream, gw, tokens = stack  # max_concurrent_per_user=3
    long = {"inputs": PROMPT, "parameters": {"max_new_tokens": 40}}
    async with httpx.AsyncClient(timeout=120) as http:
        results = await asyncio.gather(*(http.post(f"{url}/generate", json=long, headers=_auth(tokens["alice"]))
                                         for _ in range(6)))
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) >= 3 and set(codes) <= {200, 429} and 429 in codes
        refused = next(r for r in results if r.status_code == 429)
        assert refused.json()["error_type"] == "overloaded" and "alice" in refused.json()["error"]
        r = await http.post(f"{url}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 2}},
                            headers=_auth(tokens["bob"]))
        assert r.status_code == 200
