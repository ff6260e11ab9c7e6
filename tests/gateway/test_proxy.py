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
        r = await http.post(f"{url}/generate", json=body, headers={**_auth(tokens["alice"]), "X-Inhouse-Team": "blue"})
        assert r.status_code == 403 and "not one of your teams (red)" in r.json()["error"]
        r = await http.post(f"{url}/generate", json=body, headers={"X-Api-Key": tokens["alice"]})
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
        assert "x-api-key" in r.json()["error"]
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
        upstream_info = (await http.get(f"{upstream}/info")).json()
        # requests without an adapter get team-b here, so its profile is the one to build prompts with
        assert info["profile"] == upstream_info["adapter_profiles"]["team-b"]
        assert list(info["adapter_profiles"]) == ["team-b"]
        # a revoked token is refused on its very next request
        bob_id = next(t["id"] for t in gw.accounts.list_tokens() if t["user"] == "bob")
        gw.accounts.revoke_token(bob_id)
        r = await http.post(f"{url}/generate", json=body, headers=_auth(tokens["bob"]))
        assert r.status_code == 401 and "revoked" in r.json()["error"]
        metrics = (await http.get(f"{url}/metrics")).text
    gw.audit.flush()
    rows = audit_rows(gw.engine, kind="request")
    ok = [r for r in rows if r["status"] == 200 and r["route"] == "/generate"]
    assert {(r["actor"], r["team"], r["adapter"]) for r in ok} == {("alice", "red", "team-a"),
                                                                   ("bob", "blue", "team-b")}
    assert all(r["upstream"] == upstream and r["generated_tokens"] == 6 and r["latency_ms"] > 0 for r in ok)
    statuses = sorted(r["status"] for r in rows if r["route"] == "/generate")
    assert statuses == sorted([200, 200, 403, 422, 403, 401, 401, 401, 401, 422, 422, 401])
    assert all(r["adapter"] is None and r["upstream"] is None for r in rows if r["status"] == 403)  # never sent on
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


def _events(user_ts: float, adapter: str, repo: str, language: str, n_shown: int, accepted: list[tuple[int, bool]],
            retained: list[tuple[int, int, int]]) -> list[dict]:
    """shown s0..s{n-1}; accepted[(chars, partial)] for s0..; retained[(suggestion index, after_s, chars)]."""
    common = {"adapter": adapter, "repo": repo, "language": language, "ts": user_ts}
    out = [{"kind": "shown", "id": f"s{i}", "chars": 30, "latency_ms": 100.0 + i, **common} for i in range(n_shown)]
    out += [{"kind": "accepted", "id": f"s{i}", "chars": c, "partial": p, **common}
            for i, (c, p) in enumerate(accepted)]
    out += [{"kind": "retained", "id": f"s{i}", "after_s": t, "chars": c, **common} for i, t, c in retained]
    return out


async def test_events_and_audit_reach_the_dashboard_exactly(stack):
    import time

    url, _upstream, gw, tokens = stack
    gw.accounts.add_user("root", admin=True, password="s3cret-pass")
    now = time.time()
    alice = _events(now - 60, "team-a", "acme/web", "python", 4, [(30, False), (12, True)],
                    [(0, 30, 30), (0, 600, 21), (1, 30, 12), (1, 120, 6)])
    bob = _events(now - 30, "team-b", "acme/api", "go", 2, [(30, False)], [(0, 30, 15)])
    async with httpx.AsyncClient(timeout=60) as http:
        policy = (await http.get(f"{url}/v1/policy", headers=_auth(tokens["alice"]))).json()
        assert policy == {"adoption_events": True, "retention_checks_s": [30, 120, 300, 600],
                          "max_events_per_batch": 500, "store_suggestions": False, "suggestions_retention_days": 30.0}
        for who, batch in (("alice", alice), ("bob", bob)):
            r = await http.post(f"{url}/v1/events", json={"events": batch}, headers=_auth(tokens[who]))
            assert r.status_code == 200 and r.json() == {"stored": len(batch)}
        for _ in range(2):
            assert (await http.post(f"{url}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 2}},
                                    headers=_auth(tokens["alice"]))).status_code == 200
        # the admin signs in (a wrong password first)
        r = await http.post(f"{url}/admin/login", data={"name": "root", "password": "nope"})
        assert r.status_code == 401
        assert (await http.get(f"{url}/admin/api/summary")).status_code == 401
        r = await http.post(f"{url}/admin/login", data={"name": "root", "password": "s3cret-pass"})
        assert r.status_code == 303 and "inhouse_admin" in r.cookies
        gw.audit.flush()
        s = (await http.get(f"{url}/admin/api/summary")).json()
        a = s["adoption"]
        assert (a["shown"], a["accepted"], a["accepted_partial"], a["accepted_chars"]) == (6, 3, 1, 72)
        assert a["acceptance_rate"] == 0.5 and a["active_users"] == 2
        curve = {c["after_s"]: (c["retained_chars"], c["accepted_chars"]) for c in a["retention"]}
        assert curve == {30: (57, 72), 120: (6, 12), 300: (0, 0), 600: (21, 30)}
        svc = {row["upstream"]: row for row in s["service"]}
        assert svc[_upstream]["requests"] == 2 and svc[_upstream]["errors"] == 0
        red = (await http.get(f"{url}/admin/api/summary", params={"team": "red"})).json()["adoption"]
        assert (red["shown"], red["accepted"], red["accepted_chars"], red["active_users"]) == (4, 2, 42, 1)
        go = (await http.get(f"{url}/admin/api/summary", params={"language": "go"})).json()["adoption"]
        assert (go["shown"], go["accepted_chars"]) == (2, 30)
        csv_text = (await http.get(f"{url}/admin/api/audit", params={"format": "csv"})).text
        assert csv_text.splitlines()[0].startswith("id,ts,kind,actor")
        assert sum(1 for line in csv_text.splitlines() if ",/v1/events,200," in line) == 2
        # revoking from the dashboard needs the header and is audited under the admin's name
        bob_id = next(t["id"] for t in (await http.get(f"{url}/admin/api/accounts")).json()["tokens"]
                      if t["user"] == "bob")
        assert (await http.post(f"{url}/admin/api/tokens/{bob_id}/revoke")).status_code == 401
        r = await http.post(f"{url}/admin/api/tokens/{bob_id}/revoke", headers={"X-Requested-With": "inhouse-admin"})
        assert r.status_code == 200
        assert (await http.post(f"{url}/v1/events", json={"events": bob}, headers=_auth(tokens["bob"]))).status_code \
            == 401
    admin_rows = audit_rows(gw.engine, kind="admin")
    assert any(r["route"] == "tokens.revoke" and r["actor"] == "root" for r in admin_rows)
    assert [r["status"] for r in admin_rows if r["route"] == "admin.login"] == [303, 401]


BAD_EVENTS = [
    ("not json", b"{events: [", 422, "must be JSON"),
    ("not a batch", b"[1, 2]", 422, 'must be {"events": [...]}, got a list'),
    ("no events", b'{"event": []}', 422, "`events` is required"),
    ("unknown kind", {"events": [{"kind": "typed", "id": "s1"}]}, 422, "events.0.kind"),
    ("code in an event", {"events": [{"kind": "shown", "id": "s1", "text": "print(password)"}]}, 422,
     "events carry no code"),
    ("negative length", {"events": [{"kind": "shown", "id": "s1", "chars": -1}]}, 422, "events.0.chars"),
    ("retention check without its time", {"events": [{"kind": "retained", "id": "s1", "chars": 3}]}, 422,
     "`after_s` of a retained event"),
    ("SQL in a repository name", {"events": [{"kind": "shown", "id": "s1", "repo": "x'); DROP TABLE events;--"}]},
     422, "events.0.repo"),
    ("SQL in a suggestion id", {"events": [{"kind": "shown", "id": "1 OR 1=1"}]}, 422, "events.0.id"),
    ("oversized batch", {"events": [{"kind": "shown", "id": f"s{i}"} for i in range(501)]}, 413,
     "at most 500 events"),
]


@pytest.mark.parametrize("case, body, status, message", BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS])
async def test_bad_events_are_clear_4xx_and_store_nothing(gateway_server, case, body, status, message):
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from core.launch import free_port
    from gateway.models import Event

    url, app = gateway_server((f"http://127.0.0.1:{free_port()}",), adoption_events=True)  # events need no model
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    tokens = {"alice": gw.accounts.create_token("alice")}
    good = {"kind": "shown", "id": "ok1", "chars": 3}
    if isinstance(body, dict) and len(body["events"]) < 10:
        body = {"events": [good, *body["events"]]}  # a valid event before the bad one is not stored either
        message = message.replace("events.0.", "events.1.")
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{url}/v1/events", content=content, headers=_auth(tokens["alice"]))
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()
    with Session(gw.engine) as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0


async def test_routes_the_gateway_answers_are_audited_too(stack):
    url, _upstream, gw, tokens = stack
    async with httpx.AsyncClient(timeout=30) as http:
        for route in ("/info", "/v1/models", "/v1/policy"):
            assert (await http.get(f"{url}{route}", headers=_auth(tokens["bob"]))).status_code == 200
        assert (await http.get(f"{url}/info")).status_code == 401
    gw.audit.flush()
    rows = [(r["actor"], r["team"], r["route"], r["status"]) for r in audit_rows(gw.engine, kind="request")]
    assert sorted(rows, key=str) == sorted([("bob", "blue", "/info", 200), ("bob", "blue", "/v1/models", 200),
                                            ("bob", "blue", "/v1/policy", 200), ("anonymous", None, "/info", 401)],
                                           key=str)
