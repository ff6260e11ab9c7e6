"""The cycle's report: report.json (the state, whole) and report.md (minutes per stage, the exam's intervals,
the canary's arms, the decision), rewritten after every stage that ends or pauses a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.artifacts import write_json_atomic
from flywheel.state import CycleState, Stage


def write_report(directory: Path, state: CycleState) -> None:
    write_json_atomic(directory / "report.json", state.to_dict())
    tmp = directory / ".report.md.tmp"
    tmp.write_text(markdown(state), encoding="utf-8")
    tmp.replace(directory / "report.md")


def markdown(state: CycleState) -> str:
    lines = [f"# Cycle {state.id} of team {state.team}", "",
             f"Started {state.started}, finished {state.finished or '(open)'}; outcome: **{state.outcome}**.", ""]
    snap = state.result(Stage.SNAPSHOT)
    if snap:
        lines += [f"Exam cut-off {snap.get('cutoff')} ({snap.get('cutoff_why')}); newest commit "
                  f"{snap.get('newest_commit')}.", ""]
    lines += ["| stage | status | minutes | what |", "|---|---|---:|---|"]
    for stage in Stage:
        r = state.result(stage)
        if r:
            lines.append(f"| {stage.value} | {r.get('status')} | {r.get('minutes', '')} | {_what(stage, r)} |")
    gate = state.result(Stage.GATE)
    if gate.get("reasons"):
        rule = gate.get("rule") or {}
        lines += ["", f"## Exam gate (against {gate.get('against')}): "
                      f"{'eligible' if gate.get('eligible') else 'refused'}", "",
                  f"Rule `{rule.get('name')}`: {rule.get('text', rule)}", "",
                  "| metric | candidate − reference (points, 95% interval) | n | verdict | passes |",
                  "|---|---:|---:|---|---|"]
        lines += [_reason(r) for r in gate["reasons"]]
        lines += ["", f"Full exam report: {Path(gate['report']).parent / 'report.md'}"]
    decide = state.result(Stage.DECIDE)
    if decide.get("arms"):
        lines += ["", "## Canary", "", f"Decision: {decide.get('decision')} ({decide.get('reason')})", "",
                  "```", _pretty(decide["arms"]), "```"]
    return "\n".join(lines) + "\n"


def _what(stage: Stage, r: dict[str, Any]) -> str:
    if stage is Stage.SNAPSHOT:
        return ", ".join(f"{k}@{v[:10]}" for k, v in r.get("heads", {}).items())
    if stage is Stage.CORPUS:
        rows = r.get("rows", {})
        cache = r.get("cache") or {}
        text = f"rows train {rows.get('train')} / dev {rows.get('dev')} / eval {rows.get('eval')}"
        if cache:
            text += f"; files processed {cache.get('files_processed')}, from cache {cache.get('files_cached')}"
        return text
    if stage is Stage.TRAIN:
        return f"{r.get('steps')} steps, dev loss {r.get('dev_loss')}, from {r.get('init_adapter') or 'scratch'}"
    if stage is Stage.DPO:
        return r.get("skipped") or f"{r.get('pairs')} pairs"
    if stage is Stage.GATE:
        return f"{'eligible' if r.get('eligible') else 'refused'} against {r.get('against')}"
    if stage is Stage.REGISTER:
        return f"{r.get('ref')} ({r.get('adapter_id')})"
    if stage is Stage.CANARY:
        if r.get("promoted_without_canary"):
            return f"promoted at once: {r['promoted_without_canary']}"
        return f"{r.get('ref')} vs {r.get('against')}, share {r.get('share')}, {r.get('minutes')} min"
    if stage is Stage.DECIDE:
        return f"{r.get('decision')}: {r.get('reason') or ''}"
    return ""


def _reason(r: Any) -> str:
    """One row of the gate's table (the exam's fractions in points)."""
    if not isinstance(r, dict):
        return f"| {r} | | | | |"

    def pts(x: Any) -> str:
        return f"{100 * x:+.1f}" if isinstance(x, (int, float)) else "n/a"

    return (f"| {r.get('metric')} | {pts(r.get('delta'))} [{pts(r.get('ci_low'))}, {pts(r.get('ci_high'))}] "
            f"| {r.get('n', '')} | {r.get('verdict')} | {'yes' if r.get('passed') else 'no'} |")


def _pretty(data: Any) -> str:
    import json

    return json.dumps(data, indent=1, sort_keys=True)
