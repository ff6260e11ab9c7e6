"""The `/admin` dashboard: an admin login, the page (gateway/static/admin.html) and the JSON it draws from.

Admins are users with `--admin` and a password (`inhouse admin users add NAME --admin --password-file F`).
A login gives an HttpOnly, SameSite=Strict session cookie kept in this process; the JSON routes need it and
their POSTs also need `X-Requested-With`, so another site cannot drive them. Revoking a token from the page is
audited under the admin's name. Installed by `gateway.app.create_app`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from core.errors import InhouseError, ValidationError
from gateway import audit, reports
from gateway.accounts import AuthError
from gateway.errors import error_response
from gateway.registry import Registry

if TYPE_CHECKING:
    from gateway.runtime import Gateway

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "inhouse_admin"
LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>inhouse admin: sign in</title>
<style>body{font:15px system-ui,sans-serif;background:#f4f5f7;display:flex;justify-content:center;padding-top:12vh}
form{background:#fff;padding:28px 32px;border-radius:8px;box-shadow:0 1px 4px #0002;display:grid;gap:10px;width:300px}
input,button{font:inherit;padding:8px}button{background:#2456c9;color:#fff;border:0;border-radius:4px}
.err{color:#b00020}</style></head><body><form method="post" action="/admin/login">
<h2>inhouse admin</h2>{error}<input name="name" placeholder="user" autocomplete="username" required>
<input name="password" type="password" placeholder="password" autocomplete="current-password" required>
<button id="login" type="submit">Sign in</button></form></body></html>"""


class Sessions:
    def __init__(self, hours: float) -> None:
        self.seconds = hours * 3600
        self._by_id: dict[str, tuple[str, float]] = {}

    def open(self, user: str) -> str:
        now = time.time()
        for old in [k for k, (_, until) in self._by_id.items() if until < now]:
            del self._by_id[old]
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = (user, time.time() + self.seconds)
        return sid

    def user(self, sid: str | None) -> str | None:
        entry = self._by_id.get(sid or "")
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    def close(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


def _filters(request: Request) -> reports.Filters:
    q = request.query_params
    now = time.time()
    try:
        since = float(q.get("since") or now - 30 * 86400)
        until = float(q.get("until") or now + 60)
    except ValueError as exc:
        raise ValidationError(f"`since` and `until` must be UNIX seconds: {exc}") from exc
    return reports.Filters(since=since, until=until, team=q.get("team") or None, language=q.get("language") or None,
                           adapter=q.get("adapter") or None, repo=q.get("repo") or None)


def install(app: FastAPI, gw: Gateway) -> None:
    sessions = Sessions(gw.cfg.session_hours)

    def admin_of(request: Request, *, writing: bool = False) -> str:
        user = sessions.user(request.cookies.get(COOKIE))
        if user is None:
            raise AuthError("sign in at /admin first")
        if writing and request.headers.get("x-requested-with") != "inhouse-admin":
            raise AuthError("admin changes need the `X-Requested-With: inhouse-admin` header")
        return user

    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> Response:
        if sessions.user(request.cookies.get(COOKIE)) is None:
            return HTMLResponse(LOGIN_PAGE.replace("{error}", ""))
        return HTMLResponse((STATIC / "admin.html").read_text(encoding="utf-8"))

    @app.post("/admin/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        name, password = (form.get("name") or [""])[0], (form.get("password") or [""])[0]
        user = await asyncio.to_thread(gw.accounts.check_login, name, password)
        gw.audit.add(ts=time.time(), kind="admin", actor=name[:64] or "anonymous", team=None, adapter=None,
                     route="admin.login", status=303 if user else 401, prompt_tokens=None, generated_tokens=None,
                     latency_ms=None, upstream=None, detail=None)
        if user is None:
            return HTMLResponse(LOGIN_PAGE.replace("{error}", '<p class="err">wrong user or password, or not an '
                                                   'admin</p>'), status_code=401)
        resp = RedirectResponse("/admin", status_code=303)
        resp.set_cookie(COOKIE, sessions.open(user), httponly=True, samesite="strict", path="/admin",
                        max_age=int(sessions.seconds))
        return resp

    @app.post("/admin/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(COOKIE))
        resp = RedirectResponse("/admin", status_code=303)
        resp.delete_cookie(COOKIE, path="/admin")
        return resp

    @app.get("/admin/api/summary", include_in_schema=False)
    async def summary(request: Request) -> Response:
        try:
            admin_of(request)
            data = await asyncio.to_thread(reports.summary, gw.engine, _filters(request))
            data["options"] = await asyncio.to_thread(reports.filter_options, gw.engine)
            data["upstreams"] = gw.pool.snapshot()
            return JSONResponse(data)
        except InhouseError as exc:
            return error_response(exc)

    @app.get("/admin/api/accounts", include_in_schema=False)
    async def accounts(request: Request) -> Response:
        try:
            admin_of(request)
            a = gw.accounts
            return JSONResponse({"users": await asyncio.to_thread(a.list_users),
                                 "teams": await asyncio.to_thread(a.list_teams),
                                 "tokens": await asyncio.to_thread(a.list_tokens),
                                 "adapters": await asyncio.to_thread(a.list_adapters)})
        except InhouseError as exc:
            return error_response(exc)

    @app.get("/admin/api/registry", include_in_schema=False)
    async def registry(request: Request) -> Response:
        """The registry's versions and the canaries (running first) with both arms, the rule and the verdict."""
        try:
            admin_of(request)
            reg = Registry(gw.engine, cfg=gw.cfg)
            return JSONResponse({"versions": await asyncio.to_thread(reg.versions),
                                 "canaries": await asyncio.to_thread(reg.canaries)})
        except InhouseError as exc:
            return error_response(exc)

    @app.get("/admin/api/audit", include_in_schema=False)
    async def audit_rows(request: Request) -> Response:
        try:
            admin_of(request)
            fmt = request.query_params.get("format", "rows")
            f = _filters(request)
            if fmt in ("csv", "json"):
                text = await asyncio.to_thread(audit.export, gw.engine, fmt, since=f.since, until=f.until)
                return Response(text, media_type="text/csv" if fmt == "csv" else "application/json",
                                headers={"content-disposition": f'attachment; filename="audit.{fmt}"'})
            limit = min(int(request.query_params.get("limit") or 100), 1000)
            return JSONResponse(await asyncio.to_thread(audit.rows, gw.engine, since=f.since, until=f.until,
                                                        limit=limit))
        except InhouseError as exc:
            return error_response(exc)
        except ValueError:
            return error_response(ValidationError("`limit` must be an integer"))

    @app.post("/admin/api/tokens/{token_id}/revoke", include_in_schema=False)
    async def revoke(token_id: int, request: Request) -> Response:
        try:
            admin = admin_of(request, writing=True)
            await asyncio.to_thread(gw.accounts.revoke_token, token_id, actor=admin)
            return JSONResponse({"revoked": token_id})
        except InhouseError as exc:
            return error_response(exc)
