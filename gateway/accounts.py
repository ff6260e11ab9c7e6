"""Users, teams, tokens and adapter access: the admin operations and the per-request token check.

Every change is one transaction that also appends an `admin` audit row naming who did it. Tokens are random
(`ih_` + 43 url-safe characters), shown once and stored as their sha256. Names are checked against one pattern
before any query, so a name can never carry SQL (and every query is parameterized anyway).
Called by `inhouse admin` (gateway.cli), the `/admin` dashboard and the proxy (`authenticate`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import InhouseError, ValidationError
from gateway.generation import bump
from gateway.models import Adapter, AuditRow, Membership, Team, TeamAdapter, Token, User

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "ih_"


class AuthError(InhouseError):
    """A missing, unknown, revoked or expired token (HTTP 401)."""

    error_type = "unauthorized"


class ForbiddenError(InhouseError):
    """A known user asking for something their teams may not use (HTTP 403)."""

    error_type = "forbidden"


class NotFoundError(InhouseError):
    error_type = "not_found"


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(f"`{kind}` must be 1-64 letters, digits, '.', '_', '@' or '-' starting with a letter "
                              f"or digit, got {name!r}")
    return name


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to, with what their teams may use (team name -> allowed adapters, default)."""

    user_id: int
    user: str
    teams: tuple[tuple[str, tuple[str, ...], str | None], ...]

    def team_for(self, adapter: str | None, wanted_team: str | None = None) -> str | None:
        """The team under which `adapter` is used (the asked team when given), or None when no team allows it."""
        for team, allowed, _default in self.teams:
            if wanted_team and team != wanted_team:
                continue
            if adapter is None or adapter in allowed:
                return team
        return None

    def default_adapter(self, wanted_team: str | None = None) -> tuple[str | None, str | None]:
        """(team, its default adapter) for a request that names no adapter."""
        for team, _allowed, default in self.teams:
            if wanted_team and team != wanted_team:
                continue
            if default:
                return team, default
        teams = [t for t, _, _ in self.teams if not wanted_team or t == wanted_team]
        return (teams[0] if teams else None), None


class Accounts:
    def __init__(self, engine: Engine, actor: str = "cli", cache_s: float = 0.0) -> None:
        self.engine = engine
        self.actor = actor  # who the audit rows name when a call gives no actor
        # Valid tokens are remembered for `cache_s` seconds (the gateway's `auth_cache_s`) so a completion costs
        # no query; any change made through this object clears it, so a revoke from /admin is refused at once.
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal]] = {}

    def _audit(self, s: Session, actor: str | None, route: str, detail: dict[str, Any], team: str | None = None,
               adapter: str | None = None) -> None:
        s.add(AuditRow(ts=time.time(), kind="admin", actor=(actor or self.actor)[:64], team=team, adapter=adapter,
                       route=route,
                       status=200, detail=json.dumps(detail, sort_keys=True)))

    def _user(self, s: Session, name: str) -> User:
        user = s.scalar(select(User).where(User.name == check_name("user", name)))
        if user is None:
            raise NotFoundError(f"no user named {name!r}")
        return user

    def _team(self, s: Session, name: str) -> Team:
        team = s.scalar(select(Team).where(Team.name == check_name("team", name)))
        if team is None:
            raise NotFoundError(f"no team named {name!r}")
        return team

    def _write(self, fn, what: str):
        try:
            with Session(self.engine) as s, s.begin():
                out = fn(s)
        except IntegrityError as exc:
            raise ValidationError(f"{what} already exists") from exc
        finally:
            self._cache.clear()
        return out

    # users
    def add_user(self, name: str, *, admin: bool = False, password: str | None = None,
                 actor: str | None = None) -> None:
        check_name("user", name)

        def run(s: Session) -> None:
            s.add(User(name=name, is_admin=admin, created_at=time.time(), disabled=False,
                       password_hash=hash_password(password) if password else None))
            s.flush()
            self._audit(s, actor, "users.add", {"user": name, "admin": admin})

        self._write(run, f"user {name!r}")

    def set_password(self, name: str, password: str, actor: str | None = None) -> None:
        if len(password) < 8:
            raise ValidationError("`password` must be at least 8 characters")

        def run(s: Session) -> None:
            self._user(s, name).password_hash = hash_password(password)
            self._audit(s, actor, "users.password", {"user": name})

        self._write(run, "password")

    def disable_user(self, name: str, actor: str | None = None) -> None:
        def run(s: Session) -> None:
            self._user(s, name).disabled = True
            self._audit(s, actor, "users.disable", {"user": name})

        self._write(run, "user")

    def list_users(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            teams: dict[int, list[str]] = {}
            for uid, tname in s.execute(select(Membership.user_id, Team.name).join(Team,
                                                                                   Team.id == Membership.team_id)):
                teams.setdefault(uid, []).append(tname)
            return [{"name": u.name, "admin": u.is_admin, "disabled": u.disabled, "teams": sorted(teams.get(u.id, []))}
                    for u in s.scalars(select(User).order_by(User.name))]

    def check_login(self, name: str, password: str) -> str | None:
        """The admin's name when `name`/`password` are an enabled admin's, else None."""
        if not NAME_RE.match(name or ""):
            return None
        with Session(self.engine) as s:
            user = s.scalar(select(User).where(User.name == name))
            ok = user is not None and user.is_admin and not user.disabled and check_password(password,
                                                                                             user.password_hash)
            return name if ok else None

    # teams and adapters
    def add_team(self, name: str, actor: str | None = None) -> None:
        check_name("team", name)

        def run(s: Session) -> None:
            s.add(Team(name=name, created_at=time.time()))
            s.flush()
            self._audit(s, actor, "teams.add", {"team": name}, team=name)

        self._write(run, f"team {name!r}")

    def add_member(self, team: str, user: str, actor: str | None = None) -> None:
        def run(s: Session) -> None:
            s.add(Membership(user_id=self._user(s, user).id, team_id=self._team(s, team).id))
            s.flush()
            self._audit(s, actor, "teams.add-member", {"team": team, "user": user}, team=team)

        self._write(run, f"membership of {user!r} in {team!r}")

    def add_adapter(self, name: str, report_json: str | None = None, actor: str | None = None) -> None:
        check_name("adapter", name)
        if report_json is not None:
            try:
                json.loads(report_json)
            except ValueError as exc:
                raise ValidationError(f"the exam report of adapter {name!r} is not JSON: {exc}") from exc

        def run(s: Session) -> None:
            s.add(Adapter(name=name, report_json=report_json, created_at=time.time()))
            s.flush()
            self._audit(s, actor, "adapters.add", {"adapter": name, "report": report_json is not None},
                        adapter=name)

        self._write(run, f"adapter {name!r}")

    def _adapter(self, s: Session, name: str) -> Adapter:
        adapter = s.get(Adapter, check_name("adapter", name))
        if adapter is None:
            raise NotFoundError(f"no adapter named {name!r} (add it with `inhouse admin adapters add`)")
        return adapter

    def allow(self, team: str, adapter: str, *, default: bool = False, actor: str | None = None) -> None:
        """Let `team` use `adapter` (and make it the team's default when `default`)."""
        def run(s: Session) -> None:
            t = self._team(s, team)
            self._adapter(s, adapter)
            if s.get(TeamAdapter, (t.id, adapter)) is None:
                s.add(TeamAdapter(team_id=t.id, adapter=adapter))
            if default:
                t.default_adapter = adapter
                bump(s)  # requests without an adapter get it from the next one on, in every gateway
            self._audit(s, actor, "teams.allow", {"team": team, "adapter": adapter, "default": default},
                        team=team, adapter=adapter)

        self._write(run, "access")

    def deny(self, team: str, adapter: str, actor: str | None = None) -> None:
        def run(s: Session) -> None:
            t = self._team(s, team)
            s.execute(delete(TeamAdapter).where(TeamAdapter.team_id == t.id, TeamAdapter.adapter == adapter))
            if t.default_adapter == adapter:
                t.default_adapter = None
                bump(s)
            self._audit(s, actor, "teams.deny", {"team": team, "adapter": adapter}, team=team, adapter=adapter)

        self._write(run, "access")

    def list_teams(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            out = []
            for t in s.scalars(select(Team).order_by(Team.name)):
                adapters = sorted(s.scalars(select(TeamAdapter.adapter).where(TeamAdapter.team_id == t.id)))
                members = sorted(s.scalars(select(User.name).join(Membership, Membership.user_id == User.id)
                                           .where(Membership.team_id == t.id)))
                out.append({"name": t.name, "default_adapter": t.default_adapter, "adapters": adapters,
                            "members": members})
            return out

    def list_adapters(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [{"name": a.name, "report": json.loads(a.report_json) if a.report_json else None}
                    for a in s.scalars(select(Adapter).order_by(Adapter.name))]

    def adapter_names(self) -> set[str]:
        with Session(self.engine) as s:
            return set(s.scalars(select(Adapter.name)))

    # tokens
    def create_token(self, user: str, *, name: str = "default", expires_in_days: float | None = None,
                     actor: str | None = None) -> str:
        """A new token for `user`; the secret is returned once and only its hash is stored."""
        check_name("token name", name)
        if expires_in_days is not None and expires_in_days <= 0:
            raise ValidationError(f"`expires_in_days` must be > 0, got {expires_in_days}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()

        def run(s: Session) -> None:
            u = self._user(s, user)
            s.add(Token(user_id=u.id, name=name, hash=hash_token(secret), prefix=secret[:10], created_at=now,
                        expires_at=now + expires_in_days * 86400 if expires_in_days else None))
            s.flush()
            self._audit(s, actor, "tokens.create", {"user": user, "token": secret[:10], "name": name})

        self._write(run, "token")
        return secret

    def revoke_token(self, token_id: int, actor: str | None = None) -> None:
        def run(s: Session) -> None:
            tok = s.get(Token, token_id)
            if tok is None:
                raise NotFoundError(f"no token with id {token_id}")
            if tok.revoked_at is None:
                tok.revoked_at = time.time()
            self._audit(s, actor, "tokens.revoke", {"token_id": token_id, "token": tok.prefix})

        self._write(run, "token")

    def list_tokens(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.execute(select(Token, User.name).join(User, User.id == Token.user_id).order_by(Token.id))
            now = time.time()
            return [{"id": t.id, "user": uname, "name": t.name, "prefix": t.prefix, "created_at": t.created_at,
                     "expires_at": t.expires_at, "revoked_at": t.revoked_at,
                     "active": t.revoked_at is None and (t.expires_at is None or t.expires_at > now)}
                    for t, uname in rows]

    def cached(self, secret: str) -> Principal | None:
        """The principal of a token checked less than `cache_s` seconds ago, else None."""
        entry = self._cache.get(secret)
        if entry is None or entry[0] <= time.time():
            return None
        return entry[1]

    def authenticate(self, secret: str) -> Principal:
        """The principal of a bearer token; AuthError (401) when unknown, revoked, expired or its user disabled."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
            raise AuthError("unknown token: gateway tokens start with 'ih_' (create one with "
                            "`inhouse admin tokens create USER`)")
        with Session(self.engine) as s:
            row = s.execute(select(Token, User).join(User, User.id == Token.user_id)
                            .where(Token.hash == hash_token(secret))).first()
            if row is None:
                raise AuthError("unknown token")
            tok, user = row
            if tok.revoked_at is not None:
                raise AuthError(f"token {tok.prefix}... was revoked")
            if tok.expires_at is not None and tok.expires_at <= time.time():
                raise AuthError(f"token {tok.prefix}... has expired")
            if user.disabled:
                raise AuthError(f"user {user.name!r} is disabled")
            teams = []
            for team in s.scalars(select(Team).join(Membership, Membership.team_id == Team.id)
                                  .where(Membership.user_id == user.id).order_by(Team.name)):
                allowed = tuple(sorted(s.scalars(select(TeamAdapter.adapter).where(TeamAdapter.team_id == team.id))))
                teams.append((team.name, allowed, team.default_adapter))
            principal = Principal(user_id=user.id, user=user.name, teams=tuple(teams))
        if self.cache_s > 0:
            until = min(time.time() + self.cache_s, tok.expires_at or float("inf"))
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[secret] = (until, principal)
        return principal
