"""`inhouse gateway` (serve the gateway) and `inhouse admin users|teams|tokens|adapters|audit|suggestions ...`.

Both resolve the `[gateway]` section once (defaults < file < env < flags); `admin` commands open the same
database as the gateway (`--db` or `database_url`) and apply the migrations first. Imports nothing heavy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeVar

import typer

T = TypeVar("T")

app = typer.Typer(help="Manage the gateway's users, teams, tokens, adapters and audit log.", no_args_is_help=True)
users = typer.Typer(help="Users (people who get tokens; admins also sign in to /admin).", no_args_is_help=True)
teams = typer.Typer(help="Teams, their members and the adapters they may use.", no_args_is_help=True)
tokens = typer.Typer(help="Per-user tokens (shown once, stored hashed).", no_args_is_help=True)
adapters = typer.Typer(help="Adapters the gateway knows, with their exam reports.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
suggestions_app = typer.Typer(help="Stored suggestions (`store_suggestions`): preference pairs for `inhouse dpo`.",
                              no_args_is_help=True)
app.add_typer(users, name="users")
app.add_typer(teams, name="teams")
app.add_typer(tokens, name="tokens")
app.add_typer(adapters, name="adapters")
app.add_typer(audit_app, name="audit")
app.add_typer(suggestions_app, name="suggestions")

def _resolve(ctx: typer.Context, section: type[T], **flags: Any) -> T:
    """The [gateway] section under the invocation's --config (Typer's context object), then these flags."""
    from core.config import resolve_section

    return resolve_section(ctx.obj, section, **flags)


DB_OPTION = typer.Option(None, "--db", help="Database URL (default: [gateway] database_url).")


def _accounts(ctx: typer.Context, db: str | None):
    import getpass

    from gateway.accounts import Accounts
    from gateway.config import GatewayConfig
    from gateway.db import open_database

    cfg = _resolve(ctx, GatewayConfig, database_url=db)
    return Accounts(open_database(cfg.database_url), actor=f"cli:{getpass.getuser()}")


def _secret(path: Path | None, what: str) -> str | None:
    from core.errors import ConfigError

    if path is None:
        return None
    try:
        text = (sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")).strip()
    except OSError as exc:
        raise ConfigError(f"`{what}` {str(path)!r} cannot be read: {exc}") from exc
    return text


def _print(rows: list[dict], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))


def gateway(
    ctx: typer.Context,
    upstream: list[str] | None = typer.Option(None, "--upstream", "-u", help="Model server URL (repeatable)."),
    db: str | None = DB_OPTION,
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (default 8090)."),
    adoption_events: bool | None = typer.Option(None, "--adoption-events/--no-adoption-events",
                                                help="The policy: collect adoption events from editors."),
    store_suggestions: bool | None = typer.Option(None, "--store-suggestions/--no-store-suggestions",
                                                  help="The policy: keep prompts, suggestions and their outcome "
                                                       "(for `inhouse dpo`)."),
    rate_limit_per_minute: int | None = typer.Option(None, "--rate-limit-per-minute"),
    max_concurrent_per_user: int | None = typer.Option(None, "--max-concurrent-per-user"),
) -> None:
    """Serve the gateway: the model servers' API with per-user tokens, team adapters, audit and /admin."""
    import logging

    import uvicorn

    from gateway.app import create_app
    from gateway.config import GatewayConfig

    cfg = _resolve(ctx, GatewayConfig, upstreams=tuple(upstream) if upstream else None, database_url=db,
                          host=host, port=port, adoption_events=adoption_events, store_suggestions=store_suggestions,
                          rate_limit_per_minute=rate_limit_per_minute, max_concurrent_per_user=max_concurrent_per_user)
    app_ = create_app(cfg)
    logging.getLogger(__name__).info("gateway on http://%s:%d for %s", cfg.host, cfg.port, ", ".join(cfg.upstreams))
    uvicorn.run(app_, host=cfg.host, port=cfg.port, log_level=cfg.log_level, timeout_graceful_shutdown=5)


@users.command("add")
def users_add(ctx: typer.Context,
              name: str, admin: bool = typer.Option(False, "--admin", help="May sign in to /admin."),
              password_file: Path | None = typer.Option(None, "--password-file", help="File ('-': stdin) holding the "
                                                        "admin's password."),
              db: str | None = DB_OPTION) -> None:
    """Add a user."""
    password = _secret(password_file, "password_file")
    if admin and not password:
        from core.errors import ConfigError

        raise ConfigError("an admin needs a password to sign in: pass --password-file FILE (or - for stdin)")
    _accounts(ctx, db).add_user(name, admin=admin, password=password)
    typer.echo(f"user {name} added")


@users.command("disable")
def users_disable(ctx: typer.Context, name: str, db: str | None = DB_OPTION) -> None:
    """Disable a user: every token of theirs stops working."""
    _accounts(ctx, db).disable_user(name)
    typer.echo(f"user {name} disabled")


@users.command("list")
def users_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json"), db: str | None = DB_OPTION) -> None:
    """List users with their teams."""
    _print(_accounts(ctx, db).list_users(), as_json)


@teams.command("add")
def teams_add(ctx: typer.Context, name: str, db: str | None = DB_OPTION) -> None:
    """Add a team."""
    _accounts(ctx, db).add_team(name)
    typer.echo(f"team {name} added")


@teams.command("add-member")
def teams_add_member(ctx: typer.Context, team: str, user: str, db: str | None = DB_OPTION) -> None:
    """Put a user in a team (a user may be in several)."""
    _accounts(ctx, db).add_member(team, user)
    typer.echo(f"{user} is in {team}")


@teams.command("allow")
def teams_allow(ctx: typer.Context, team: str, adapter: str, default: bool = typer.Option(False, "--default",
                                                                       help="Also make it the team's default."),
                db: str | None = DB_OPTION) -> None:
    """Let a team use an adapter (requests without adapter_id get the team's default)."""
    _accounts(ctx, db).allow(team, adapter, default=default)
    typer.echo(f"{team} may use {adapter}" + (" (default)" if default else ""))


@teams.command("deny")
def teams_deny(ctx: typer.Context, team: str, adapter: str, db: str | None = DB_OPTION) -> None:
    """Take an adapter away from a team."""
    _accounts(ctx, db).deny(team, adapter)
    typer.echo(f"{team} may no longer use {adapter}")


@teams.command("list")
def teams_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json"), db: str | None = DB_OPTION) -> None:
    """List teams with their adapters, default and members."""
    _print(_accounts(ctx, db).list_teams(), as_json)


@tokens.command("create")
def tokens_create(ctx: typer.Context, user: str, name: str = typer.Option("default", "--name"),
                  expires_days: float | None = typer.Option(None, "--expires-days", help="Expiry (default: never)."),
                  db: str | None = DB_OPTION) -> None:
    """Create a token for a user; it is printed once (only its hash is stored)."""
    typer.echo(_accounts(ctx, db).create_token(user, name=name, expires_in_days=expires_days))


@tokens.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: int, db: str | None = DB_OPTION) -> None:
    """Revoke a token by its id (`tokens list`); its next request gets 401."""
    _accounts(ctx, db).revoke_token(token_id)
    typer.echo(f"token {token_id} revoked")


@tokens.command("list")
def tokens_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json"), db: str | None = DB_OPTION) -> None:
    """List tokens (id, user, prefix, state); never the secrets."""
    _print(_accounts(ctx, db).list_tokens(), as_json)


@adapters.command("add")
def adapters_add(ctx: typer.Context,
                 name: str, report: Path | None = typer.Option(None, "--report", help="The adapter's exam "
                                                                "report.json (`inhouse eval`)."),
                 db: str | None = DB_OPTION) -> None:
    """Register an adapter (the id the model servers load it under), with its exam report."""
    _accounts(ctx, db).add_adapter(name, _secret(report, "report"))
    typer.echo(f"adapter {name} added")


@adapters.command("list")
def adapters_list(ctx: typer.Context,
                  as_json: bool = typer.Option(False, "--json"), db: str | None = DB_OPTION) -> None:
    """List adapters."""
    rows = [{"name": a["name"], "report": bool(a["report"])} for a in _accounts(ctx, db).list_adapters()]
    _print(rows, as_json)


@audit_app.command("export")
def audit_export(ctx: typer.Context, fmt: str = typer.Option("csv", "--format", help="csv or json."),
                 out: Path | None = typer.Option(None, "--out", "-o", help="File (default: stdout)."),
                 since: float | None = typer.Option(None, "--since", help="UNIX seconds."),
                 db: str | None = DB_OPTION) -> None:
    """Export the audit log (every request and admin change; never code) for a SIEM."""
    import os

    from core.errors import ConfigError
    from gateway.audit import export

    if fmt not in ("csv", "json"):
        raise ConfigError(f"`--format` must be csv or json, got {fmt!r}")
    text = export(_accounts(ctx, db).engine, fmt, since=since)
    if out is None:
        typer.echo(text, nl=False)
    else:
        tmp = out.with_name(f".{out.name}.partial")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)  # never a half-written export under the final name
        typer.echo(f"audit log written to {out}")


def _day(value: str | None, what: str) -> float | None:
    """UNIX seconds of a YYYY-MM-DD date (00:00 UTC)."""
    import datetime as dt

    from core.errors import ConfigError

    if value is None:
        return None
    try:
        day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ConfigError(f"`{what}` must be a date YYYY-MM-DD, got {value!r}") from exc
    return day.timestamp()


@suggestions_app.command("export")
def suggestions_export(ctx: typer.Context, team: str = typer.Option(..., "--team", help="The team whose "
                                                                    "suggestions to export."),
                       out: Path = typer.Option(..., "--out", "-o", help="JSONL file of DPO rows to write."),
                       since: str | None = typer.Option(None, "--since", help="Only suggestions made from this "
                                                        "day on (YYYY-MM-DD, UTC)."),
                       as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON on stdout."),
                       db: str | None = DB_OPTION) -> None:
    """Write preference pairs {prompt, chosen, rejected, id, adapter} for `inhouse dpo`: chosen is the text the
    user ended with, rejected the suggestion, for suggestions whose final text is non-empty and differs."""
    import os
    import tempfile

    from gateway.accounts import check_name
    from gateway.suggestions import preference_pairs

    rows, counts = preference_pairs(_accounts(ctx, db).engine, check_name("team", team), _day(since, "--since"))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)  # never a half-written export under the final name
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    summary = {"team": team, "out": str(out), **counts.to_dict()}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"{counts.stored} stored, {counts.with_outcome} with an outcome, {counts.pairs} pairs "
                   f"written to {out}", err=True)


@suggestions_app.command("purge")
def suggestions_purge(ctx: typer.Context, as_json: bool = typer.Option(False, "--json"),
                      db: str | None = DB_OPTION) -> None:
    """Delete stored suggestions older than `suggestions_retention_days` (the gateway also does on write)."""
    from gateway.config import GatewayConfig
    from gateway.db import open_database
    from gateway.suggestions import purge

    cfg = _resolve(ctx, GatewayConfig, database_url=db)
    deleted = purge(open_database(cfg.database_url), cfg.suggestions_retention_days)
    if as_json:
        typer.echo(json.dumps({"deleted": deleted, "retention_days": cfg.suggestions_retention_days}))
    else:
        typer.echo(f"{deleted} suggestions older than {cfg.suggestions_retention_days:g} days deleted", err=True)
