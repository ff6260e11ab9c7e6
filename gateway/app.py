"""The gateway's ASGI app: `create_app(cfg)` wires storage, upstreams, limits, audit, metrics and the routes.

`Gateway` is the one object the routes share (config, database engine, accounts, upstream pool, rate
limiter, audit writer, metrics, the HTTP client to the upstreams). The model routes are in `gateway.proxy`,
the `/admin` dashboard in `gateway.dashboard`; the adoption-event, suggestion-outcome and policy routes are here.
Used by `inhouse gateway` (gateway.cli), the tests and bench/gateway.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticError
from sqlalchemy import Engine

from core.errors import InhouseError, ValidationError
from gateway import db, errors, events, suggestions
from gateway.accounts import Accounts, ForbiddenError
from gateway.audit import AuditWriter
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimiter
from gateway.routing import Router
from gateway.runtime import Gateway
from gateway.upstreams import UpstreamPool

log = logging.getLogger(__name__)


def create_app(cfg: GatewayConfig, engine: Engine | None = None) -> FastAPI:
    """The gateway for `cfg`; the database is migrated to the newest schema before the app is returned."""
    engine = engine or db.open_database(cfg.database_url)
    metrics = GatewayMetrics()
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    client = httpx.AsyncClient(timeout=httpx.Timeout(cfg.timeout_s, connect=min(5.0, cfg.timeout_s)), limits=limits)
    pool = UpstreamPool(cfg.upstreams, interval_s=cfg.health_interval_s, client=client)
    pool.on_change = lambda up: metrics.upstream_healthy.labels(up.url).set(1 if up.healthy else 0)
    accounts = Accounts(engine, actor="gateway", cache_s=cfg.auth_cache_s)
    gw = Gateway(cfg=cfg, engine=engine, accounts=accounts, pool=pool,
                 limiter=RateLimiter(cfg.rate_limit_per_minute, cfg.max_concurrent_per_user),
                 audit=AuditWriter(engine), metrics=metrics, client=client, router=Router(engine),
                 suggestions=suggestions.Store(engine, cfg.suggestions_retention_days))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await pool.start()
        try:
            yield
        finally:
            await pool.stop()
            await client.aclose()
            gw.audit.close()

    app = FastAPI(title="inhouse gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gw
    errors.install(app)
    _event_routes(app, gw)
    from gateway import dashboard, proxy

    dashboard.install(app, gw)
    proxy.install(app, gw)
    return app


def _event_routes(app: FastAPI, gw: Gateway) -> None:
    from gateway.proxy import answer, authenticate

    @app.get("/v1/policy")
    async def policy(request: Request) -> Response:
        return await answer(gw, request, "/v1/policy", lambda _principal, _routed: events.policy(gw.cfg))

    @app.post("/v1/events")
    async def post_events(request: Request) -> Response:
        started = time.perf_counter()
        user, team, status = "anonymous", None, 500
        try:
            principal = await authenticate(gw, request)
            routed = (await asyncio.to_thread(gw.router.current)).default_for(principal)
            user, team = principal.user, routed.team
            if not gw.cfg.adoption_events:
                raise ForbiddenError("the company's policy does not collect adoption events (GET /v1/policy)")
            limit_bytes = gw.cfg.max_events_per_batch * 1024
            raw = await request.body()
            if len(raw) > limit_bytes:
                raise errors.TooLargeError(f"an event batch must be at most {limit_bytes} bytes, got {len(raw)}")
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise ValidationError(f"the request body must be JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ValidationError(f'the request body must be {{"events": [...]}}, got a {type(data).__name__}')
            if isinstance(data.get("events"), list) and len(data["events"]) > gw.cfg.max_events_per_batch:
                raise errors.TooLargeError(f"a batch must hold at most {gw.cfg.max_events_per_batch} events, "
                                           f"got {len(data['events'])}")
            try:
                batch = events.EventBatch.model_validate(data)
            except PydanticError as exc:
                raise ValidationError(_describe(exc)) from exc
            stored = await asyncio.to_thread(events.store_batch, gw.engine, principal, batch, routed=routed)
            for ev in batch.events:
                gw.metrics.events.labels(team or "-", ev.kind).inc()
            status = 200
            return JSONResponse({"stored": stored})
        except InhouseError as exc:
            status = errors.status_of(exc)
            return errors.error_response(exc)
        finally:
            gw.audit.add(ts=time.time(), kind="request", actor=user, team=team, adapter=None, route="/v1/events",
                         status=status, prompt_tokens=None, generated_tokens=None,
                         latency_ms=round((time.perf_counter() - started) * 1000, 2), upstream=None, detail=None)


    @app.post("/v1/suggestions/outcome")
    async def post_outcome(request: Request) -> Response:
        started = time.perf_counter()
        user, team, status = "anonymous", None, 500
        try:
            principal = await authenticate(gw, request)
            user, team = principal.user, principal.default_adapter()[0]
            if not gw.cfg.store_suggestions:
                raise ForbiddenError("the company's policy does not store suggestions (GET /v1/policy)")
            raw = await request.body()
            if len(raw) > 4 * suggestions.MAX_TEXT:
                raise errors.TooLargeError(f"an outcome must be at most {4 * suggestions.MAX_TEXT} bytes, "
                                           f"got {len(raw)}")
            try:
                outcome = suggestions.Outcome.model_validate_json(raw)
            except PydanticError as exc:
                raise ValidationError(_describe(exc, "an outcome is `id`, `final` and `shown`")) from exc
            await asyncio.to_thread(suggestions.record_outcome, gw.engine, principal, outcome)
            status = 200
            return JSONResponse({"stored": True})
        except InhouseError as exc:
            status = errors.status_of(exc)
            return errors.error_response(exc)
        finally:
            gw.audit.add(ts=time.time(), kind="request", actor=user, team=team, adapter=None,
                         route="/v1/suggestions/outcome", status=status, prompt_tokens=None, generated_tokens=None,
                         latency_ms=round((time.perf_counter() - started) * 1000, 2), upstream=None, detail=None)


def _describe(exc: PydanticError, fields: str = "events carry no code or other free text") -> str:
    out = []
    for err in exc.errors()[:5]:
        field = ".".join(str(p) for p in err.get("loc", ())) or "body"
        if err.get("type") == "missing":
            out.append(f"`{field}` is required")
        elif err.get("type") == "extra_forbidden":
            out.append(f"`{field}` is not a known field ({fields})")
        else:
            out.append(f"`{field}` must be valid: {err.get('msg')}, got {str(err.get('input'))[:80]!r}")
    return "; ".join(out)
