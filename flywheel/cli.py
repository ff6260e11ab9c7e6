"""`inhouse cycle TEAM`: one turn of the flywheel, safe to run from cron, a systemd timer, a Kubernetes CronJob
or Slurm (it takes the team's lock, resumes an open cycle, and does nothing when nothing changed)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def cycle(
    ctx: typer.Context,
    team: str = typer.Argument(..., help="The team whose repositories, adapter and users the cycle serves."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Flywheel folder (default: ./flywheel)."),
    base: Path | None = typer.Option(None, "--base", help="Base model directory."),
    repos: Path | None = typer.Option(None, "--repos", help="repos.toml (entries with this team are used)."),
    serve_dir: Path | None = typer.Option(None, "--serve-dir", help="The model servers' adapters directory."),
    db: str | None = typer.Option(None, "--db", help="The gateway's database URL."),
    eval_since: str | None = typer.Option(None, "--eval-since",
                                          help="Exam cut-off (ISO date/time; default: the last promoted cycle's "
                                               "newest commit)."),
    train_minutes: float | None = typer.Option(None, "--train-minutes", help="Training time budget."),
    train_steps: int | None = typer.Option(None, "--train-steps", help="Optimizer steps (0: the budget decides)."),
    init: str | None = typer.Option(None, "--init", help="current (continue the team's adapter) or fresh."),
    exam_limit: int | None = typer.Option(None, "--exam-limit", help="Held-out rows graded per model."),
    canary_minutes: float | None = typer.Option(None, "--canary-minutes", help="Canary period (0: no canary)."),
    canary_share: float | None = typer.Option(None, "--canary-share", help="Share of users on the candidate."),
    canary_policy: str | None = typer.Option(None, "--canary-policy", help="auto or manual."),
    dpo: bool | None = typer.Option(None, "--dpo/--no-dpo", help="Preference-tune on stored suggestions."),
    until: str | None = typer.Option(None, "--until", help="Stop after this stage (the cycle stays open)."),
    force: bool = typer.Option(False, "--force", help="Start a cycle even if the repositories did not move."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Stage commands' output only in their logs."),
) -> None:
    """One turn of the flywheel: incremental corpus, candidate, exam gate, canary, registry."""
    from core.config import resolve_section
    from core.errors import ConfigError
    from flywheel.commands import Inhouse
    from flywheel.config import CycleConfig
    from flywheel.cycle import run_cycle
    from flywheel.state import Stage

    cfg = resolve_section(
        ctx.obj, CycleConfig, state_dir=str(state_dir) if state_dir else None, base=str(base) if base else None,
        repos=str(repos) if repos else None, serve_dir=str(serve_dir) if serve_dir else None, database_url=db,
        eval_since=eval_since, train_minutes=train_minutes, train_steps=train_steps, init=init,
        exam_limit=exam_limit, canary_minutes=canary_minutes, canary_share=canary_share,
        canary_policy=canary_policy, dpo=dpo)
    stop = None
    if until is not None:
        try:
            stop = Stage(until)
        except ValueError:
            raise ConfigError(f"`--until` must be one of {[s.value for s in Stage]}, got {until!r}") from None
    config_file = getattr(ctx.obj, "config_file", None)
    inhouse = Inhouse(Path(config_file).resolve() if config_file else None, show_progress=not no_progress)
    result = run_cycle(cfg, team, inhouse, until=stop, force=force)
    if as_json:
        typer.echo(json.dumps({"cycle": result.cycle_id, "outcome": result.outcome, "message": result.message,
                               "state": result.state}, sort_keys=True))
    else:
        typer.echo(f"{team}: {result.outcome}: {result.message}")
