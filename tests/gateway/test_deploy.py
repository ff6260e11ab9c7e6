"""The Grafana dashboard in gateway/deploy/ is valid JSON and charts only metrics that exist: the gateway's
own (checked against a running gateway's /metrics) and the model servers' TGI names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from core.launch import free_port

DASHBOARD = Path(__file__).resolve().parents[2] / "gateway" / "deploy" / "grafana-dashboard.json"
TGI_NAMES = {"tgi_request_duration_bucket", "tgi_queue_size", "tgi_batch_current_size"}


def test_dashboard_charts_metrics_the_gateway_exports(gateway_server):
    url, app = gateway_server((f"http://127.0.0.1:{free_port()}",))
    gw = app.state.gateway
    gw.metrics.request("red", "team-a", "/generate", 200, 0.1, 3)  # so every labelled series exists
    gw.metrics.request("red", None, "/generate", 429, 0.0, None)
    gw.metrics.events.labels("red", "shown").inc()
    gw.metrics.upstream_in_flight.labels("http://127.0.0.1:1").set(0)
    exported = set(re.findall(r"^(\w+)(?:\{|\s)", httpx.get(f"{url}/metrics").text, re.M))
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b((?:inhouse_gateway|tgi)_\w+)", e)}
    assert used - TGI_NAMES and used - TGI_NAMES <= exported, sorted(used - TGI_NAMES - exported)
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "team", "adapter"}
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
