"""Replicas behind the gateway: a replica that is down is out, one that comes up is put back, requests spread
over the healthy ones, a replica that fails mid-way is retried elsewhere, all down is a clear 503."""

from __future__ import annotations

import httpx

from core.launch import free_port
from gateway.audit import rows as audit_rows
from tests.gateway.conftest import wait_for

BODY = {"inputs": "x = 1\n", "parameters": {"max_new_tokens": 2}}


def test_replicas_out_back_spread_and_all_down(model_server, gateway_server):
    first = model_server()
    second_port = free_port()
    second = f"http://127.0.0.1:{second_port}"
    url, app = gateway_server((first, second))
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    token = gw.accounts.create_token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    pool = {u.url: u for u in gw.pool.upstreams}
    assert pool[first].healthy and not pool[second].healthy  # nothing listens on the second yet
    assert httpx.post(f"{url}/generate", json=BODY, headers=auth, timeout=60).status_code == 200

    model_server(port=second_port)  # the second replica comes up: the health check puts it back
    wait_for(lambda: pool[second].healthy, what="the second replica to be put back")
    for _ in range(6):
        assert httpx.post(f"{url}/generate", json=BODY, headers=auth, timeout=60).status_code == 200
    gw.audit.flush()
    used = [r["upstream"] for r in audit_rows(gw.engine, kind="request")][:6]
    assert set(used) == {first, second}  # spread over both

    gw.pool.interval_s = 3600  # no more health checks: only failed requests can take a replica out now
    wait_for(lambda: all(u.healthy for u in pool.values()), what="the last short health check")
    model_server.stop(first)  # dies between health checks: requests to it are retried on the second
    for _ in range(3):
        assert httpx.post(f"{url}/generate", json=BODY, headers=auth, timeout=60).status_code == 200
    assert not pool[first].healthy and "ConnectError" in pool[first].last_error
    model_server.stop(second)
    r = httpx.post(f"{url}/generate", json=BODY, headers=auth, timeout=60)
    assert r.status_code == 503 and r.json()["error_type"] == "backend_unavailable"
    assert "no healthy upstream" in r.json()["error"] and first in r.json()["error"]
    assert httpx.get(f"{url}/health").status_code == 503
    metrics = httpx.get(f"{url}/metrics").text
    assert f'inhouse_gateway_upstream_healthy{{upstream="{first}"}} 0.0' in metrics


def test_an_upstream_slower_than_timeout_is_504_and_its_generation_stops(model_server, gateway_server,
                                                                         slower_model_dir):
    upstream = model_server(model_dir=slower_model_dir)
    url, app = gateway_server((upstream,), timeout_s=0.5)
    gw = app.state.gateway
    gw.accounts.add_user("alice")
    auth = {"Authorization": f"Bearer {gw.accounts.create_token('alice')}"}
    r = httpx.post(f"{url}/generate", json={"inputs": "x = 1\n", "parameters": {"max_new_tokens": 1500}},
                   headers=auth, timeout=60)
    assert r.status_code == 504 and r.json()["error_type"] == "backend_timeout"
    assert "did not answer within 0.5 s" in r.json()["error"]
    wait_for(lambda: 'tgi_request_failure{err="disconnected"} 1.0' in httpx.get(f"{upstream}/metrics").text,
             what="the model server to stop the abandoned generation")
