"""The exam gate: may a candidate adapter replace the incumbent (the team's current adapter, or the base)?

The exam grades the base, the incumbent and the candidate on the same rows, each in its own profile; this
module turns the paired-bootstrap comparison of candidate − reference (finetune/exam.py `compare_runs`) into a
decision under the rule of `[eval]` (gate_metrics, gate_rule, gate_margin), with a reason per metric, for
report.json (`gate`) and report.md. The flywheel reads `report.json["gate"]["eligible"]`.
"""

from __future__ import annotations

from typing import Any

from finetune.config import EvalConfig

LEVEL = 0.95  # the interval compare_runs puts on every difference (metrics.paired_bootstrap's default)

RULE_TEXT = {
    "not_worse": "eligible iff, for every gate metric, the upper end of the {level:.0%} paired-bootstrap interval "
                 "of candidate - {against} is >= -{margin:g} points (the candidate is not significantly worse)",
    "better": "eligible iff, for every gate metric, the upper end of the {level:.0%} paired-bootstrap interval of "
              "candidate - {against} is >= -{margin:g} points and the mean difference is > 0",
}


def rule_of(cfg: EvalConfig, against: str) -> dict[str, Any]:
    """The rule as report.json records it."""
    return {"name": cfg.gate_rule, "metrics": list(cfg.gate_metrics), "margin_points": cfg.gate_margin,
            "level": LEVEL, "bootstrap": cfg.bootstrap, "seed": cfg.seed,
            "text": RULE_TEXT[cfg.gate_rule].format(level=LEVEL, against=against, margin=cfg.gate_margin)}


def _verdict(c: dict[str, float]) -> str:
    if c["n"] == 0 or c["delta"] != c["delta"]:
        return "no data"
    if c["ci_low"] > 0:
        return "significantly better"
    if c["ci_high"] < 0:
        return "significantly worse"
    return "no significant difference"


def judge(comparison: dict[str, Any], against: str, cfg: EvalConfig) -> dict[str, Any]:
    """The gate over one comparison (a = the reference run, b = the candidate's): eligible, and why per metric.

    A metric without data (no rows scored, or no grammar for syntax validity) fails closed."""
    margin = cfg.gate_margin / 100.0
    reasons = []
    for metric in cfg.gate_metrics:
        c = comparison["overall"][metric]
        verdict = _verdict(c)
        if verdict == "no data":
            passed, why = False, "no rows to compare on"
        else:
            not_worse = c["ci_high"] >= -margin
            passed = not_worse and (cfg.gate_rule == "not_worse" or c["delta"] > 0)
            if not not_worse:
                why = f"upper end {100 * c['ci_high']:+.1f} < -{cfg.gate_margin:g} points"
            elif not passed:
                why = f"mean difference {100 * c['delta']:+.1f} points is not > 0"
            else:
                why = f"upper end {100 * c['ci_high']:+.1f} >= -{cfg.gate_margin:g} points" + (
                    f", mean {100 * c['delta']:+.1f} > 0" if cfg.gate_rule == "better" else "")
        reasons.append({"metric": metric, "delta": c["delta"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                        "n": c["n"], "verdict": verdict, "passed": passed, "why": why})
    return {"against": against, "candidate": comparison["b"], "reference": comparison["a"],
            "rule": rule_of(cfg, against), "eligible": all(r["passed"] for r in reasons), "reasons": reasons}


def markdown(gate: dict[str, Any]) -> list[str]:
    """The report.md section."""
    decision = "**eligible**" if gate["eligible"] else "**not eligible**"
    lines = ["## Gate", "",
             f"Candidate `{gate['candidate']}` against the {gate['against']} `{gate['reference']}`: {decision}.", "",
             f"Rule `{gate['rule']['name']}`: {gate['rule']['text']}.", "",
             "| metric | candidate − reference (points, 95% interval) | verdict | passes | why |",
             "|---|---:|---|---|---|"]
    for r in gate["reasons"]:
        diff = "—" if r["verdict"] == "no data" else (
            f"{100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]")
        lines.append(f"| {r['metric']} | {diff} | {r['verdict']} | {'yes' if r['passed'] else 'no'} | {r['why']} |")
    return lines + [""]
