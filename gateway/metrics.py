"""Prometheus metrics of the gateway, per team, adapter, route and status (a registry per app, for tests).

Served at `GET /metrics`; `gateway/deploy/grafana-dashboard.json` charts them beside the model servers'
TGI metrics. Updated by `gateway.proxy` and the health checks of `gateway.upstreams`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("inhouse_gateway_requests", "Requests through the gateway",
                                ["team", "adapter", "route", "status"], registry=r)
        self.duration = Histogram("inhouse_gateway_request_duration_seconds", "Seconds from request to last byte",
                                  ["team", "adapter"], buckets=_BUCKETS, registry=r)
        self.generated = Counter("inhouse_gateway_generated_tokens", "Tokens generated for requests",
                                 ["team", "adapter"], registry=r)
        self.rate_limited = Counter("inhouse_gateway_rate_limited", "Requests refused with 429 by the gateway",
                                    ["team"], registry=r)
        self.upstream_healthy = Gauge("inhouse_gateway_upstream_healthy", "1 when the upstream passes its checks",
                                      ["upstream"], registry=r)
        self.upstream_in_flight = Gauge("inhouse_gateway_upstream_in_flight", "Requests in flight per upstream",
                                        ["upstream"], registry=r)
        self.events = Counter("inhouse_gateway_adoption_events", "Adoption events stored", ["team", "kind"],
                              registry=r)

    def request(self, team: str | None, adapter: str | None, route: str, status: int, seconds: float,
                generated: int | None) -> None:
        t, a = team or "-", adapter or "base"
        self.requests.labels(t, a, route, str(status)).inc()
        self.duration.labels(t, a).observe(seconds)
        if generated:
            self.generated.labels(t, a).inc(generated)
        if status == 429:
            self.rate_limited.labels(t).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
