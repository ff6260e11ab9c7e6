"""The model routes of the gateway: the same TGI and OpenAI routes as `inhouse serve`, proxied to an upstream.

Per request: `authenticate` (bearer token) → `resolve_adapter` (the team's current version or a running
canary's candidate when none is named, read per request from gateway.routing; another team's adapter is 403,
an unknown one 422) → rate limit (429) → `forward` to a healthy replica
holding the adapter → one audit row and the metrics (and, when the policy stores suggestions and the request
carries `X-Inhouse-Suggestion-Id`, its prompt and generation: gateway.suggestions). Streams pass through byte for
byte; a client that
disconnects closes the upstream connection, which stops the generation there. Errors an upstream answers
(422, 424, 429...) reach the client unchanged. Installed by `gateway.app.create_app`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from core.errors import BackendTimeoutError, BackendUnavailableError, InhouseError, ValidationError
from gateway import suggestions
from gateway.accounts import AuthError, ForbiddenError, Principal
from gateway.errors import error_response, sse_error, status_of
from gateway.routing import Routed

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from gateway.runtime import Gateway
    from gateway.upstreams import Upstream

# Where people put a token by mistake: refused with a message naming the right header.
_WRONG_HEADERS = ("x-api-key", "api-key", "x-auth-token", "x-access-token", "token")
_COMPLETION_ROUTES = ("/generate", "/generate_stream", "/", "/v1/completions")
_TAIL = re.compile(rb'"(generated_tokens|input_length|completion_tokens|prompt_tokens)":\s*(\d+)')


def bearer(request: Request) -> str:
    """The token of `Authorization: Bearer <token>`; AuthError naming the mistake otherwise."""
    auth = request.headers.get("authorization")
    if auth is None:
        for name in _WRONG_HEADERS:
            if request.headers.get(name):
                raise AuthError(f"a token was sent in the `{name}` header; send it as `Authorization: Bearer <token>`")
        if any(k in request.query_params for k in ("token", "api_key", "access_token")):
            raise AuthError("a token was sent in the URL; send it as `Authorization: Bearer <token>` (URLs are logged)")
        raise AuthError("missing token: send `Authorization: Bearer <token>` (`inhouse admin tokens create USER`)")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the `Authorization` header must be `Bearer <token>`")
    return token.strip()


async def authenticate(gw: Gateway, request: Request) -> Principal:
    secret = bearer(request)
    cached = gw.accounts.cached(secret)
    return cached if cached is not None else await asyncio.to_thread(gw.accounts.authenticate, secret)


async def resolve_adapter(gw: Gateway, principal: Principal, asked: str | None,
                          team_hint: str | None) -> Routed:
    """Where a request asking for `asked` goes (None: what the routes give the user: the team's current
    version, or a running canary's candidate for the users in its arm)."""
    if asked is None:
        routes = await asyncio.to_thread(gw.router.current)
        return routes.default_for(principal, team_hint)
    team = principal.team_for(asked, team_hint)
    if team is not None:
        return Routed(team, asked)
    routes = await asyncio.to_thread(gw.router.current)
    routed = routes.default_for(principal, team_hint)
    if routed.adapter == asked:  # granted since the token was cached: what the user is routed to is theirs
        return routed
    known = await asyncio.to_thread(gw.accounts.adapter_names)
    if asked not in known:
        names = ", ".join(sorted(known)) or "none"
        raise ValidationError(f"`adapter_id` must be an adapter the gateway knows ({names}), got {asked[:80]!r}")
    raise ForbiddenError(f"adapter {asked!r} is not one your teams may use "
                         f"({', '.join(t for t, _, _ in principal.teams) or 'no team'})")


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ValidationError(f"the request body must be JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationError(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


class _ProxyStream(StreamingResponse):
    """A stream that runs `finish` however it ends: completed, the client gone, or never started."""

    def __init__(self, content, finish, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._finish = finish

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._finish()


class _AnswerThenAudit(Response):
    """A plain answer whose audit row and metrics are written once it has been sent (off the client's wait)."""

    def __init__(self, content: bytes, finish, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._finish = finish

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._finish()


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Call:
    """One proxied request: who, which adapter, where it went, and what to audit when it ends."""

    def __init__(self, gw: Gateway, request: Request, route: str) -> None:
        self.gw, self.request, self.route = gw, request, route
        self.started = time.perf_counter()
        self.user: str = "anonymous"
        self.team: str | None = None
        self.adapter: str | None = None
        self.upstream: Upstream | None = None
        self.counts: dict[str, int] = {}
        self.detail: str | None = None  # while a canary runs: which canary and arm the request was routed by
        self._release = lambda: None
        self._done = False
        gw.audit.expect()

    def finish(self, status: int) -> None:
        if self._done:
            return
        self._done = True
        self._release()
        if self.upstream is not None:
            self.upstream.in_flight -= 1
            self.gw.metrics.upstream_in_flight.labels(self.upstream.url).set(self.upstream.in_flight)
        seconds = time.perf_counter() - self.started
        generated = self.counts.get("generated_tokens", self.counts.get("completion_tokens"))
        prompt = self.counts.get("input_length", self.counts.get("prompt_tokens"))
        upstream = self.upstream.url if self.upstream else None
        self.gw.audit.add(expected=True, ts=time.time(), kind="request", actor=self.user, team=self.team,
                          adapter=self.adapter, route=self.route, status=status, prompt_tokens=prompt,
                          generated_tokens=generated, latency_ms=round(seconds * 1000, 2), upstream=upstream,
                          detail=self.detail)
        self.gw.metrics.request(self.team, self.adapter, self.route, status, seconds, generated)

    def _take(self, up: Upstream) -> None:
        self.upstream = up
        up.in_flight += 1
        self.gw.metrics.upstream_in_flight.labels(up.url).set(up.in_flight)

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.in_flight -= 1
            self.upstream = None

    async def send(self, path: str, body: bytes, stream: bool) -> httpx.Response:
        """Send to a replica; a refused connection takes that replica out and tries the next one."""
        tried: list[Upstream] = []
        if self.adapter is not None:
            await self.gw.pool.refresh_for(self.adapter)
        while True:
            up = self.gw.pool.pick(self.adapter, tuple(tried))
            self._take(up)
            req = self.gw.client.build_request("POST", f"{up.url}{path}", content=body,
                                               headers={"content-type": "application/json"})
            try:
                return await self.gw.client.send(req, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.gw.pool.mark_down(up, f"{type(exc).__name__}: {exc}")
                self._drop_upstream()
                tried.append(up)
            except httpx.TimeoutException as exc:
                raise BackendTimeoutError(f"upstream {up.url} did not answer within "
                                          f"{self.gw.cfg.timeout_s:g} s") from exc
            except httpx.TransportError as exc:
                raise BackendUnavailableError(f"upstream {up.url} failed: {type(exc).__name__}: {exc}") from exc

    def note_counts(self, data: bytes) -> None:
        for key, value in _TAIL.findall(data[-4096:]):
            self.counts[key.decode()] = int(value)


async def proxy(gw: Gateway, request: Request, route: str, *, openai: bool = False) -> Response:
    call = Call(gw, request, route)
    try:
        principal = await authenticate(gw, request)
        call.user = principal.user
        body = _json_body(await request.body())
        team_hint = request.headers.get("x-inhouse-team")
        if team_hint is not None and team_hint not in {t for t, _, _ in principal.teams}:
            raise ForbiddenError(f"`X-Inhouse-Team` names {team_hint[:64]!r}, which is not one of your teams "
                                 f"({', '.join(t for t, _, _ in principal.teams) or 'none'})")
        if openai:
            model = body.get("model")
            asked = None if model is None else (None if model in gw.pool.model_ids() else str(model))
            explicit_base = model is not None and asked is None
        else:
            params = body.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise ValidationError(f"`parameters` must be an object, got {type(params).__name__}")
            asked = (params or {}).get("adapter_id")
            if asked is not None and not isinstance(asked, str):
                raise ValidationError(f"`parameters.adapter_id` must be a string, got {asked!r}")
            explicit_base = False
        if explicit_base:
            call.team = principal.team_for(None, team_hint)
        else:
            routed = await resolve_adapter(gw, principal, asked, team_hint)
            call.team, call.adapter = routed.team, routed.adapter
            if routed.canary is not None:
                call.detail = json.dumps({"canary": routed.canary, "arm": routed.arm})
            if openai and call.adapter is not None:
                body["model"] = call.adapter
            elif call.adapter is not None:
                body.setdefault("parameters", {})["adapter_id"] = call.adapter
        capture = _capture(gw, request, route, body, principal, call, openai)
        call._release = gw.limiter.acquire(principal.user_id, principal.user)
        stream = bool(body.get("stream")) or route == "/generate_stream"
        payload = json.dumps(body).encode()
        if stream:
            return await _stream(call, route, payload, capture, openai)
        return await _unary(call, route, payload, capture, openai)
    except Exception as exc:
        call.finish(status_of(exc))
        return error_response(exc)


def _capture(gw: Gateway, request: Request, route: str, body: dict[str, Any], principal: Principal, call: Call,
             openai: bool) -> suggestions.Capture | None:
    """What to keep of this completion when the policy stores suggestions and the client named one."""
    if not gw.cfg.store_suggestions or route not in _COMPLETION_ROUTES:
        return None
    sid = suggestions.suggestion_id(request.headers.get(suggestions.HEADER))
    prompt = suggestions.prompt_of(body, openai) if sid is not None else None
    if sid is None or prompt is None:
        return None
    return suggestions.Capture(suggestion=sid, user_id=principal.user_id, team=call.team, adapter=call.adapter,
                               route=route, prompt=prompt, ts=time.time())


def _keep(call: Call, capture: suggestions.Capture, generated: str | None) -> None:
    """Store a captured suggestion in a worker thread (the answer is not held up by the write)."""
    if generated is None:
        return
    def done(future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("storing suggestion %s failed: %s", capture.suggestion, future.exception())

    asyncio.get_running_loop().run_in_executor(None, call.gw.suggestions.save, capture, generated) \
        .add_done_callback(done)


async def _unary(call: Call, path: str, payload: bytes, capture: suggestions.Capture | None = None,
                 openai: bool = False) -> Response:
    """A plain request: the upstream's answer, or nothing when the client left (the upstream is cancelled)."""
    sending = asyncio.ensure_future(call.send(path, payload, stream=False))
    leaving = asyncio.ensure_future(_until_disconnect(call.request))
    try:
        await asyncio.wait({sending, leaving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        leaving.cancel()
    if not sending.done():
        sending.cancel()  # closes the upstream connection: the model server stops generating
        call.finish(499)
        return Response(status_code=499)
    resp = sending.result()
    for key, header in (("generated_tokens", "x-generated-tokens"), ("input_length", "x-prompt-tokens")):
        if header in resp.headers:
            call.counts[key] = int(resp.headers[header])
    if "x-generated-tokens" not in resp.headers:
        call.note_counts(resp.content)
    if capture is not None and resp.status_code == 200:
        _keep(call, capture, suggestions.generated_of(resp.content, openai))
    headers = {k: v for k, v in resp.headers.items() if k.startswith("x-") or k == "retry-after"}
    return _AnswerThenAudit(resp.content, lambda: call.finish(resp.status_code), status_code=resp.status_code,
                            headers=headers, media_type=resp.headers.get("content-type"))


async def _stream(call: Call, path: str, payload: bytes, capture: suggestions.Capture | None = None,
                  openai: bool = False) -> Response:
    resp = await call.send(path, payload, stream=True)
    if resp.status_code != 200:  # a plain HTTP error from the upstream (422, 429...), passed on as it is
        content = await resp.aread()
        await resp.aclose()
        call.finish(resp.status_code)
        return Response(content, status_code=resp.status_code, media_type=resp.headers.get("content-type"))
    status = {"code": 499}
    text = suggestions.StreamText(openai) if capture is not None else None

    async def body():
        tail = b""
        try:
            async for chunk in resp.aiter_raw():
                tail = (tail + chunk)[-4096:]
                if text is not None:
                    text.feed(chunk)
                yield chunk
            status["code"] = 200
        except httpx.TimeoutException:
            status["code"] = 504
            yield sse_error(BackendTimeoutError(f"upstream {resp.url.host} stopped answering"))
        except httpx.TransportError as exc:
            status["code"] = 502
            yield sse_error(BackendUnavailableError(f"upstream failed mid-stream: {type(exc).__name__}"))
        finally:
            call.note_counts(tail)

    async def finish() -> None:
        await resp.aclose()  # when the client left, this closes the upstream stream and cancels its generation
        call.finish(status["code"])
        if capture is not None and text is not None and status["code"] == 200:
            _keep(call, capture, text.text)

    return _ProxyStream(body(), finish, media_type="text/event-stream",
                        headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def answer(gw: Gateway, request: Request, route: str,
                 build: Callable[[Principal, Routed], dict[str, Any]]) -> Response:
    """A route the gateway answers itself for a signed-in user (`/info`, `/v1/models`, `/v1/policy`), audited;
    `build` gets the user and where their requests without an adapter go now."""
    call = Call(gw, request, route)
    try:
        principal = await authenticate(gw, request)
        call.user = principal.user
        routed = (await asyncio.to_thread(gw.router.current)).default_for(principal)
        call.team = routed.team
        out = build(principal, routed)
    except InhouseError as exc:
        call.finish(status_of(exc))
        return error_response(exc)
    call.finish(200)
    return JSONResponse(out)


def install(app: FastAPI, gw: Gateway) -> None:
    for path in ("/generate", "/generate_stream", "/", "/tokenize"):
        async def route(request: Request, _path: str = path) -> Response:
            return await proxy(gw, request, _path)

        app.add_api_route(path, route, methods=["POST"], include_in_schema=False)

    @app.post("/v1/completions", include_in_schema=False)
    async def completions(request: Request) -> Response:
        return await proxy(gw, request, "/v1/completions", openai=True)

    def usable(principal: Principal, routed: Routed) -> set[str]:
        allowed = {a for _, adapters, _ in principal.teams for a in adapters}
        return allowed | {routed.adapter} if routed.adapter else allowed

    def info_of(principal: Principal, routed: Routed) -> dict[str, Any]:
        """A healthy upstream's /info as this user sees it: their adapters only, and as the base profile the
        profile of the adapter a request without `adapter_id` gets through the gateway now (the team's current
        version, or a canary's candidate), so the language server builds the prompt the served adapter expects."""
        default = routed.adapter
        healthy = [u for u in gw.pool.upstreams if u.healthy]
        up = next((u for u in healthy if default in u.adapters), healthy[0] if healthy else None)
        if up is None:
            raise BackendUnavailableError("no healthy upstream")
        allowed = sorted(usable(principal, routed) & gw.pool.adapters())
        profiles = up.info.get("adapter_profiles") or {}
        out = {**up.info, "adapters": allowed, "adapter_profiles": {a: p for a, p in profiles.items() if a in allowed},
               "default_adapter": default, "user": principal.user}
        if default is not None and profiles.get(default):
            out["profile"] = profiles[default]
        return out

    def models_of(principal: Principal, routed: Routed) -> dict[str, Any]:
        allowed = usable(principal, routed)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "inhouse"} for m in sorted(gw.pool.model_ids())]
        base = data[0]["id"] if data else None
        data += [{"id": a, "object": "model", "created": 0, "owned_by": "inhouse", "parent": base}
                 for a in sorted(allowed & gw.pool.adapters())]
        return {"object": "list", "data": data}

    for path, build in (("/info", info_of), ("/v1/models", models_of)):
        async def read(request: Request, _path: str = path, _build=build) -> Response:
            return await answer(gw, request, _path, _build)

        app.add_api_route(path, read, methods=["GET"], include_in_schema=False)

    @app.get("/health")
    async def health() -> Response:
        if not any(u.healthy for u in gw.pool.upstreams):
            return error_response(BackendUnavailableError("no healthy upstream"))
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
