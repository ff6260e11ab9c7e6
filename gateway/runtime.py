"""What a running gateway holds (`Gateway`): built by `gateway.app.create_app`, used by its routes, the proxy
and the dashboard. Its own module so that those modules name its type without importing the app that installs
them."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from gateway import suggestions
from gateway.accounts import Accounts
from gateway.audit import AuditWriter
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimiter
from gateway.routing import Router
from gateway.upstreams import UpstreamPool


@dataclass
class Gateway:
    cfg: GatewayConfig
    engine: Engine
    accounts: Accounts
    pool: UpstreamPool
    limiter: RateLimiter
    audit: AuditWriter
    metrics: GatewayMetrics
    client: httpx.AsyncClient
    router: Router
    suggestions: suggestions.Store
