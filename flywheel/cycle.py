"""One turn of the flywheel for a team, top to bottom:

    snapshot → corpus → train → dpo → gate → register → canary → decide

`run_cycle` resumes the team's open cycle if there is one (the stages recorded done are skipped), otherwise
starts one when the team's repositories moved since the last cycle. Each stage is an `inhouse` command; its
result is written into the cycle's state before the next begins. A cycle ends promoted, rolled back, refused by
the gate, or without an exam (too few fresh rows); while its canary runs it stays open and each later run asks
the gateway's rule again (`decide`), so the same cron line both starts cycles and finishes them.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, StageError
from flywheel.commands import Inhouse
from flywheel.config import CycleConfig, parse_time
from flywheel.report import write_report
from flywheel.state import CycleState, Outcome, Stage, TeamFolder, now_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleResult:
    cycle_id: str | None
    outcome: str  # an Outcome value, or "nothing_changed" / "locked"
    message: str
    state: dict[str, Any] | None = None


@dataclass
class Context:
    cfg: CycleConfig
    team: str
    folder: TeamFolder
    state: CycleState
    inhouse: Inhouse

    @property
    def dir(self) -> Path:
        return self.folder.cycle_dir(self.state.id)

    def log(self, stage: Stage) -> Path:
        return self.dir / "logs" / f"{stage.value}.log"

    def db(self) -> list[str]:
        return ["--db", self.cfg.database_url] if self.cfg.database_url else []

    def registry(self, *args: str, stage: Stage) -> Any:
        return self.inhouse.run(["adapters", *args, *self.db(), "--json"], self.log(stage), want_json=True)


def run_cycle(cfg: CycleConfig, team: str, inhouse: Inhouse, *, until: Stage | None = None,
              force: bool = False, eval_since: str | None = None) -> CycleResult:
    missing = cfg.missing()
    if missing:
        raise ConfigError(f"`inhouse cycle` needs {', '.join(f'`{m}`' for m in missing)} ([cycle] in the config "
                          "file or the matching flags)")
    folder = TeamFolder(cfg.state_dir, team)
    with folder.lock() as held:
        if not held:
            return CycleResult(None, "locked", f"a cycle for team {team!r} is running (pid {folder.holder()}); "
                                               "nothing to do")
        state = folder.open_cycle()
        if state is None:
            heads = repo_heads(team_repos(Path(cfg.repos), team))
            history = folder.history()
            last = history[-1] if history else None
            if last and last.get("heads") == {k: v["sha"] for k, v in heads.items()} and not force:
                return CycleResult(None, "nothing_changed",
                                   f"team {team!r}: the repositories have not moved since cycle {last['id']} "
                                   f"({last.get('outcome')}); nothing to do (--force starts one anyway)")
            state = folder.begin(folder.new_id(datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")))
            log.info("team %s: cycle %s begins", team, state.id)
        else:
            log.info("team %s: resuming cycle %s", team, state.id)
        ctx = Context(cfg, team, folder, state, inhouse)
        for stage, step in STEPS:
            if state.outcome is not None and state.outcome != Outcome.WAITING.value:
                break
            if state.done(stage):
                continue
            started = time.monotonic()
            state.stages[stage.value] = {"status": "running", "started": now_iso()}
            folder.save(state)
            _say(inhouse, f"[{team} {state.id}] {stage.value} ...")
            result = step(ctx) or {}
            if result.get("status") == "waiting":  # the canary is still running: the stage stays open
                state.stages[stage.value] = {**result, "checked": now_iso()}
                state.outcome = Outcome.WAITING.value
                folder.save(state)
                write_report(ctx.dir, state)
                return CycleResult(state.id, Outcome.WAITING.value, result.get("message", "waiting"),
                                   state.to_dict())
            minutes = round((time.monotonic() - started) / 60, 2)
            state.stages[stage.value] = {**result, "status": "done", "finished": now_iso(), "minutes": minutes}
            if result.get("outcome"):
                state.outcome = result["outcome"]
            elif state.outcome == Outcome.WAITING.value:
                state.outcome = None
            folder.save(state)
            if until is not None and stage == until:
                return CycleResult(state.id, "stopped", f"stopped after {stage.value} (--until)", state.to_dict())
        state.finished = now_iso()
        folder.save(state)
        write_report(ctx.dir, state)
        folder.close(state)
        return CycleResult(state.id, state.outcome or "unknown", _final_message(state), state.to_dict())


# ---- the stages -----------------------------------------------------------------------------------------------

def snapshot(ctx: Context) -> dict[str, Any]:
    """The team's repositories at this moment (HEAD and its commit time) and the exam's cut-off."""
    repos = team_repos(Path(ctx.cfg.repos), ctx.team)
    heads = repo_heads(repos)
    newest = max(parse_time(h["time"], "commit time") for h in heads.values())
    if ctx.cfg.eval_since:
        cutoff, why = parse_time(ctx.cfg.eval_since, "eval_since"), "[cycle] eval_since"
    else:
        promoted = [h for h in ctx.folder.history() if h.get("outcome") == Outcome.PROMOTED.value
                    and h.get("newest_commit")]
        if promoted:
            cutoff = parse_time(promoted[-1]["newest_commit"], "newest_commit")
            why = f"the newest commit of cycle {promoted[-1]['id']}, whose adapter serves now"
        else:
            cutoff = newest - datetime.timedelta(days=ctx.cfg.first_eval_days)
            why = f"first cycle: {ctx.cfg.first_eval_days:g} days before the newest commit"
    lines = []
    for name, spec in repos.items():
        lines += ["[[repo]]", f"name = {_toml_str(name)}", f"path = {_toml_str(str(spec['path']))}",
                  f"team = {_toml_str(ctx.team)}", ""]
    ctx.dir.mkdir(parents=True, exist_ok=True)
    (ctx.dir / "repos.toml").write_text("\n".join(lines), encoding="utf-8")
    return {"heads": {k: v["sha"] for k, v in heads.items()}, "newest_commit": newest.isoformat(),
            "cutoff": cutoff.isoformat(), "cutoff_why": why}


def corpus(ctx: Context) -> dict[str, Any]:
    """The dataset, re-processing only files the cache has not seen; files changed after the cut-off are the exam."""
    out = ctx.dir / "dataset"
    if not (out / "manifest.json").is_file():  # the builder renames a finished dataset into place
        _tidy(out)
        ctx.inhouse.run(["corpus", "build", "--repos", ctx.dir / "repos.toml", "--model", ctx.cfg.base,
                         "--eval-since", ctx.state.result(Stage.SNAPSHOT)["cutoff"], "--cache", ctx.folder.cache,
                         "-o", out, "--overwrite"], ctx.log(Stage.CORPUS))
    manifest = _read_json(out / "manifest.json")
    counts = manifest.get("counts", {})
    rows = {split: sum(counts.get(f"rows_{split}", {}).values()) for split in ("train", "dev", "eval")}
    result: dict[str, Any] = {"rows": rows, "cache": manifest.get("cache", {})}
    if rows["eval"] < ctx.cfg.min_exam_rows:
        result.update(outcome=Outcome.NO_EXAM.value,
                      message=f"{rows['eval']} fresh exam rows (files changed after the cut-off), fewer than "
                              f"min_exam_rows={ctx.cfg.min_exam_rows}: no candidate until more code changes")
    elif rows["train"] == 0:
        result.update(outcome=Outcome.NO_EXAM.value, message="no training rows before the cut-off")
    return result


def train(ctx: Context) -> dict[str, Any]:
    """A candidate within the time budget, from the team's current adapter (`init = "current"`) or fresh."""
    out = ctx.dir / "candidate"
    current = _current(ctx, Stage.TRAIN)
    init = current["path"] if current and ctx.cfg.init == "current" else None
    if not (out / "inhouse.json").is_file():  # the trainer writes inhouse.json last
        args: list[str | os.PathLike[str]] = ["train", "--base", ctx.cfg.base, "--data", ctx.dir / "dataset", "-o", out,
                "--max-minutes", f"{ctx.cfg.train_minutes:g}"]
        if ctx.cfg.train_steps:
            args += ["--max-steps", str(ctx.cfg.train_steps)]
        if init:
            args += ["--init-adapter", init]
        if out.exists() and any(out.iterdir()):
            args.append("--resume")  # a killed run continues from its last complete checkpoint
        ctx.inhouse.run(args, ctx.log(Stage.TRAIN))
    info = _read_json(out / "inhouse.json")
    return {"candidate": str(out), "init_adapter": current["ref"] if init and current else None,
            "steps": info.get("steps"), "dev_loss": info.get("dev_loss"),
            "primary_mode": info.get("primary_mode")}


def dpo(ctx: Context) -> dict[str, Any]:
    """Preference-tune the candidate on the team's stored suggestions (kept vs dismissed), when enabled."""
    if not ctx.cfg.dpo:
        return {"skipped": "[cycle] dpo is off"}
    pairs = ctx.dir / "pairs.jsonl"
    exported = ctx.inhouse.run(["admin", "suggestions", "export", "--team", ctx.team, "--out", pairs,
                                *ctx.db(), "--json"], ctx.log(Stage.DPO), want_json=True)
    count = int(exported.get("pairs", 0))
    if count < ctx.cfg.dpo_min_pairs:
        return {"skipped": f"{count} preference pairs, fewer than dpo_min_pairs={ctx.cfg.dpo_min_pairs}",
                "pairs": count}
    out = ctx.dir / "candidate-dpo"
    if not (out / "inhouse.json").is_file():
        args: list[str | os.PathLike[str]] = ["dpo", "--base", ctx.cfg.base, "--adapter", ctx.dir / "candidate",
                                              "--preferences", pairs, "-o", out, "--overwrite"]
        if ctx.cfg.dpo_steps:
            args += ["--max-steps", str(ctx.cfg.dpo_steps)]
        ctx.inhouse.run(args, ctx.log(Stage.DPO))
    return {"candidate": str(out), "pairs": count}


def gate(ctx: Context) -> dict[str, Any]:
    """Base, current adapter and candidate on the same fresh held-out rows, through the served path."""
    candidate = _candidate(ctx)
    current = _current(ctx, Stage.GATE)
    out = ctx.dir / "exam"
    if not (out / "report.json").is_file():  # the exam renames a finished report folder into place
        _tidy(out)
        args: list[str | os.PathLike[str]] = ["eval", "--base", ctx.cfg.base, "--data", ctx.dir / "dataset",
                                              "--adapter", candidate, "--limit", str(ctx.cfg.exam_limit), "-o", out,
                                              "--gate-only", "--overwrite"]
        if current:
            args += ["--incumbent", current["path"]]
        ctx.inhouse.run(args, ctx.log(Stage.GATE))
    report = _read_json(out / "report.json")
    verdict = report.get("gate")
    if not isinstance(verdict, dict) or "eligible" not in verdict:
        raise StageError(f"{out / 'report.json'} has no gate verdict; was it written by an older `inhouse eval`?")
    return {"report": str(out / "report.json"), "against": verdict.get("against"),
            "incumbent": current["ref"] if current else None, "eligible": bool(verdict["eligible"]),
            "rule": verdict.get("rule"), "reasons": verdict.get("reasons")}


def register(ctx: Context) -> dict[str, Any]:
    """The candidate becomes a version in the registry (copied atomically into the servers' adapters folder);
    a candidate the gate refused is recorded as refused and goes no further."""
    verdict = ctx.state.result(Stage.GATE)
    answer = ctx.registry("register", ctx.team, ctx.cfg.adapter_name, "--adapter", _candidate(ctx),
                          "--serve-dir", ctx.cfg.serve_dir, "--report", verdict["report"], stage=Stage.REGISTER)
    result = {"ref": answer["ref"], "adapter_id": answer["adapter_id"], "version": answer.get("version")}
    if not verdict["eligible"]:
        reason = "exam gate: " + "; ".join(_reason_text(r) for r in verdict.get("reasons") or []) or "not eligible"
        ctx.registry("refuse", answer["ref"], "--reason", reason[:500], stage=Stage.REGISTER)
        result.update(outcome=Outcome.REFUSED.value, message=f"{answer['ref']} refused by the exam gate")
    return result


def canary(ctx: Context) -> dict[str, Any]:
    """A share of the team's users gets the candidate for a while; with no current adapter (or no canary
    period configured) a candidate the gate accepted is promoted at once."""
    ref = ctx.state.result(Stage.REGISTER)["ref"]
    current = _current(ctx, Stage.CANARY)
    if current is None or ctx.cfg.canary_minutes == 0:
        ctx.registry("promote", ref, stage=Stage.CANARY)
        why = "no current adapter to compare with" if current is None else "canary_minutes = 0"
        return {"promoted_without_canary": why, "outcome": Outcome.PROMOTED.value,
                "message": f"{ref} promoted ({why})"}
    if ctx.registry("show", ref, stage=Stage.CANARY).get("state") != "canary":  # not started by a killed run
        ctx.registry("canary", "start", ref, "--share", f"{ctx.cfg.canary_share:g}",
                     "--minutes", f"{ctx.cfg.canary_minutes:g}", "--policy", ctx.cfg.canary_policy,
                     "--min-shown", str(ctx.cfg.canary_min_shown), stage=Stage.CANARY)
    return {"ref": ref, "against": current["ref"], "share": ctx.cfg.canary_share,
            "minutes": ctx.cfg.canary_minutes, "policy": ctx.cfg.canary_policy}


def decide(ctx: Context) -> dict[str, Any]:
    """Ask the gateway's canary rule; promote or roll back (policy auto), or wait: for more suggestions, for the
    period to end, or for an admin (policy manual). An admin's own promote or rollback ends the cycle too."""
    ref = ctx.state.result(Stage.REGISTER)["ref"]
    shown = ctx.registry("show", ref, stage=Stage.DECIDE)
    state = shown.get("state")
    if state == "current":
        return {"decision": "promote", "by": "admin or an earlier run", "outcome": Outcome.PROMOTED.value}
    if state in ("rolled_back", "retired", "refused"):
        return {"decision": "rollback", "by": "admin or an earlier run", "outcome": Outcome.ROLLED_BACK.value}
    args = ["canary", "decide", ctx.team] + (["--apply"] if ctx.cfg.canary_policy == "auto" else [])
    answer = ctx.registry(*args, stage=Stage.DECIDE)
    decision = answer.get("decision")
    if decision == "promote":
        return {"decision": decision, "reason": answer.get("reason"), "arms": answer.get("arms"),
                "outcome": Outcome.PROMOTED.value, "message": f"{ref} promoted by the canary rule"}
    if decision == "rollback":
        return {"decision": decision, "reason": answer.get("reason"), "arms": answer.get("arms"),
                "outcome": Outcome.ROLLED_BACK.value, "message": f"{ref} rolled back by the canary rule"}
    return {"status": "waiting", "decision": "wait", "reason": answer.get("reason"), "arms": answer.get("arms"),
            "message": f"{ref} in canary: {answer.get('reason') or 'waiting'}"}


STEPS = ((Stage.SNAPSHOT, snapshot), (Stage.CORPUS, corpus), (Stage.TRAIN, train), (Stage.DPO, dpo),
         (Stage.GATE, gate), (Stage.REGISTER, register), (Stage.CANARY, canary), (Stage.DECIDE, decide))


# ---- helpers ----------------------------------------------------------------------------------------------------

def team_repos(repos_toml: Path, team: str) -> dict[str, dict[str, Any]]:
    """name -> {path} of the repos.toml entries whose `team` is `team` (paths made absolute)."""
    try:
        data = tomllib.loads(repos_toml.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"`repos` {str(repos_toml)!r} cannot be read as TOML: {exc}") from exc
    rows = data.get("repo", data.get("repos")) or []
    out: dict[str, dict[str, Any]] = {}
    teams = set()
    for row in rows:
        if not isinstance(row, dict) or "path" not in row:
            continue
        teams.add(str(row.get("team", "")))
        if str(row.get("team", "")) != team:
            continue
        path = Path(row["path"])
        path = path if path.is_absolute() else (repos_toml.parent / path)
        out[str(row.get("name") or path.resolve().name)] = {"path": path.resolve()}
    if not out:
        raise ConfigError(f"{repos_toml}: no [[repo]] has team = {team!r} (teams there: {sorted(teams - {''})})")
    return out


def repo_heads(repos: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """name -> {sha, time} of each repository's HEAD (the flywheel follows commits, so each must be git)."""
    heads = {}
    for name, spec in repos.items():
        proc = subprocess.run(["git", "-C", str(spec["path"]), "log", "-1", "--format=%H %cI"],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise ConfigError(f"repository {name!r} ({spec['path']}) is not a git repository with a commit: "
                              f"{proc.stderr.strip()[:200]}")
        sha, when = proc.stdout.split()
        heads[name] = {"sha": sha, "time": when}
    return heads


def _current(ctx: Context, stage: Stage) -> dict[str, str] | None:
    """The team's current version: {ref, adapter_id, path}, or None when the team has none yet."""
    answer = ctx.registry("list", ctx.team, stage=stage)
    for row in answer.get("versions", []):
        if row.get("state") == "current" and row.get("name") == ctx.cfg.adapter_name:
            return {"ref": row["ref"], "adapter_id": row["adapter_id"],
                    "path": str(Path(ctx.cfg.serve_dir) / row["adapter_id"])}
    return None


def _candidate(ctx: Context) -> str:
    dpo_result = ctx.state.result(Stage.DPO)
    return str(dpo_result.get("candidate") or ctx.state.result(Stage.TRAIN)["candidate"])


def _reason_text(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("text") or reason.get("verdict") or reason)
    return str(reason)


def _tidy(out: Path) -> None:
    """Remove what a killed run of the command left beside `out` (its hidden `.NAME.*` work folders)."""
    for leftover in out.parent.glob(f".{out.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(f"{path} is missing or unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these characters


def _say(inhouse: Inhouse, text: str) -> None:
    if inhouse.show_progress:
        print(text, file=sys.stderr, flush=True)


def _final_message(state: CycleState) -> str:
    for stage in reversed(Stage):
        message = state.result(stage).get("message")
        if message:
            return str(message)
    return f"cycle {state.id}: {state.outcome}"

