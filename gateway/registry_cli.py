"""`inhouse adapters register|list|show|diff|promote|rollback|refuse` and `inhouse adapters canary ...`.

Each command opens the gateway's database (`--db` or `[gateway] database_url`), applies the migrations first, and
with `--json` prints one JSON object on stdout (what `inhouse cycle` parses); an error is one line on stderr and
exit status 2. A change governs the next request of every running gateway (gateway.routing). Imports nothing heavy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="The adapter registry: versions per team (team/name@N), promotion, rollback, canaries.",
                  no_args_is_help=True)
canary_app = typer.Typer(help="Route a share of a team's users to a candidate and compare both arms.",
                         no_args_is_help=True)
app.add_typer(canary_app, name="canary")

DB_OPTION = typer.Option(None, "--db", help="Database URL (default: [gateway] database_url).")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object.")


def _registry(ctx: typer.Context, db: str | None):
    import getpass

    from core.config import resolve_section
    from gateway.config import GatewayConfig
    from gateway.db import open_database
    from gateway.registry import Registry

    cfg = resolve_section(ctx.obj, GatewayConfig, database_url=db)
    return Registry(open_database(cfg.database_url), actor=f"cli:{getpass.getuser()}", cfg=cfg)


def _out(obj: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(obj, indent=1, sort_keys=True) if as_json else text)


def _line(v: dict[str, Any]) -> str:
    exam = v.get("exam") or {}
    tuned = exam.get("tuned") or {}
    em = f" EM {tuned['em']:.3f}" if tuned.get("em") is not None else ""
    return (f"{v['ref']:<28} {v['state']:<12} {v['adapter_id']:<32} data {str(v['data_sha256'])[:12]}"
            f" git {v['git_sha']}{em}")


@app.command("register")
def register(ctx: typer.Context, team: str, name: str,
             adapter: Path = typer.Option(..., "--adapter", help="The adapter directory (`inhouse train` output)."),
             serve_dir: Path = typer.Option(..., "--serve-dir", help="The model servers' adapters directory."),
             report: Path | None = typer.Option(None, "--report", help="Its exam report.json."),
             reason: str | None = typer.Option(None, "--reason", help="Why (kept with the version)."),
             db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Copy an adapter to the servers atomically as TEAM.NAME.vN and register it as a candidate (the same files
    again: the existing version)."""
    from core.errors import ConfigError

    report_json = None
    if report is not None:
        try:
            report_json = report.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"`--report` {str(report)!r} cannot be read: {exc}") from exc
    v = _registry(ctx, db).register(team, name, adapter, serve_dir, report_json=report_json, reason=reason)
    out = {k: v[k] for k in ("ref", "adapter_id", "version", "state", "created")}
    _out(out, as_json, f"{v['ref']} ({v['adapter_id']}) {'registered' if v['created'] else 'already registered'}, "
                       f"{v['state']}")


@app.command("list")
def list_versions(ctx: typer.Context, team: str | None = typer.Argument(None), db: str | None = DB_OPTION,
                  as_json: bool = JSON_OPTION) -> None:
    """List versions (of one team), with their state, served id, data hash and git sha."""
    rows = _registry(ctx, db).versions(team)
    _out({"versions": rows}, as_json, "\n".join(_line(v) for v in rows) or "no versions")


@app.command("show")
def show(ctx: typer.Context, ref: str, db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """One version (team/name@N, or team/name for the current) with its exam report."""
    v = _registry(ctx, db).show(ref)
    _out(v, as_json, "\n".join(f"{k}: {json.dumps(val) if isinstance(val, dict | list) else val}"
                               for k, val in v.items() if k != "report"))


@app.command("diff")
def diff(ctx: typer.Context, ref_a: str, ref_b: str, db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Two versions side by side: exam headline, data hash, base, profile fields, git sha ('*' marks a difference)."""
    d = _registry(ctx, db).diff(ref_a, ref_b)
    lines = [f"  {'field':<40} {d['a']:<24} {d['b']}"]
    lines += [f"{'*' if r['differs'] else ' '} {r['field']:<40} {str(r['a']):<24} {r['b']}" for r in d["fields"]]
    _out(d, as_json, "\n".join(lines))


@app.command("promote")
def promote(ctx: typer.Context, ref: str, reason: str | None = typer.Option(None, "--reason"),
            db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Make a version its team's current (requests without an adapter get it from the next one on)."""
    out = _registry(ctx, db).promote(ref, reason=reason)
    _out(out, as_json, f"{ref} is current for {ref.split('/')[0]}")


@app.command("rollback")
def rollback(ctx: typer.Context, team: str, to: str | None = typer.Option(None, "--to", help="A former current "
                                                                          "version (default: the one replaced)."),
             reason: str | None = typer.Option(None, "--reason"), db: str | None = DB_OPTION,
             as_json: bool = JSON_OPTION) -> None:
    """Roll back the team's current version: the one it replaced (or --to) is current again, from the next
    request on."""
    out = _registry(ctx, db).rollback(team, to=to, reason=reason)
    now = out["current"]["ref"] if out["current"] else "the base model"
    _out(out, as_json, f"{out['rolled_back']['ref']} rolled back; {team} gets {now}")


@app.command("refuse")
def refuse(ctx: typer.Context, ref: str, reason: str = typer.Option(..., "--reason", help="Why the gate refused it."),
           db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Mark a candidate refused by the exam gate (it can never be promoted)."""
    out = _registry(ctx, db).refuse(ref, reason)
    _out(out, as_json, f"{ref} refused: {reason}")


@canary_app.command("start")
def canary_start(ctx: typer.Context, ref: str,
                 share: float | None = typer.Option(None, "--share", help="Share of the team's users (default "
                                                    "[gateway] canary_share)."),
                 minutes: float | None = typer.Option(None, "--minutes", help="Period (default canary_minutes)."),
                 policy: str | None = typer.Option(None, "--policy", help="auto or manual (default canary_policy)."),
                 min_shown: int | None = typer.Option(None, "--min-shown", help="Shown suggestions each arm needs "
                                                      "(default canary_min_shown)."),
                 db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Route a deterministic share of the candidate's team to it (one canary per team)."""
    out = _registry(ctx, db).canary_start(ref, share=share, minutes=minutes, policy=policy, min_shown=min_shown)
    _out(out, as_json, f"canary #{out['id']}: {out['share']:g} of {out['team']} → {ref} (policy {out['policy']})")


def _figures_text(out: dict[str, Any]) -> str:
    def ci(v: list[float] | None) -> str:
        return f"[{v[0]:.4f}, {v[1]:.4f}]" if v else "–"

    lines = []
    for name, arm in (out.get("arms") or {}).items():
        lines.append(f"{name:<10} users {arm['users']:>4} shown {arm['shown']:>6} accepted {arm['accepted']:>6} "
                     f"rate {arm['acceptance_rate'] if arm['acceptance_rate'] is not None else '–'} "
                     f"{ci(arm['acceptance_rate_ci95'])} retained/shown {arm['retained_chars_per_shown']} "
                     f"{ci(arm['retained_chars_per_shown_ci95'])}")
    for metric, d in (out.get("difference") or {}).items():
        lines.append(f"candidate − current {metric}: " + (f"{d['value']:+.4f} {ci(d['ci95'])}" if d else "–"))
    return "\n".join(lines)


@canary_app.command("status")
def canary_status(ctx: typer.Context, team: str, db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The team's canary (running, else the latest): both arms with intervals, the rule, its verdict."""
    out = _registry(ctx, db).canary_status(team)
    head = (f"canary #{out['id']} {out['state']}: {out['candidate']['ref']} vs {out['current']['ref'] or 'base'}, "
            f"share {out['share']:g}, policy {out['policy']}")
    _out(out, as_json, f"{head}\n{_figures_text(out)}\nverdict: {out.get('verdict')} ({out.get('verdict_reason')})")


@canary_app.command("decide")
def canary_decide(ctx: typer.Context, team: str,
                  apply: bool = typer.Option(False, "--apply", help="Apply the verdict even under policy manual."),
                  db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """promote, rollback or wait under the rule; applied under policy auto (or --apply)."""
    out = _registry(ctx, db).canary_decide(team, apply=apply)
    _out(out, as_json, f"{out['decision']}{' (applied)' if out['applied'] else ''}: {out['reason']}\n"
                       f"{_figures_text(out)}")


@canary_app.command("stop")
def canary_stop(ctx: typer.Context, team: str,
                promote: bool | None = typer.Option(None, "--promote/--rollback", help="End it by promoting the "
                                                    "candidate, or by rolling it back."),
                reason: str | None = typer.Option(None, "--reason"),
                db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """End the team's canary: --promote (the candidate becomes current) or --rollback."""
    from core.errors import ValidationError

    if promote is None:
        raise ValidationError("`canary stop` needs --promote or --rollback")
    out = _registry(ctx, db).canary_stop(team, promote=promote, reason=reason)
    _out(out, as_json, f"canary #{out['canary']} {out['outcome']}: {team} gets "
                       f"{out['current']['ref'] if out['current'] else 'the base model'}")
