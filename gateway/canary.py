"""The canary's arithmetic: which arm a user is in, each arm's figures with intervals, and the decision rule.

A user is in the candidate arm iff int(sha256(f"{canary_id}:{user}")) / 2**256 < share: deterministic, stable
for the canary's life, independent between canaries. Per arm, over the canary's period: suggestions shown,
accepted, the acceptance rate with a Wilson 95% interval, and retained characters per shown suggestion (the
retention check at `after_s`) with a bootstrap-by-user 95% interval; the difference candidate − current with
Newcombe's interval (rates) and a bootstrap one (retained characters). Pure functions over plain rows, so the
numbers can be recomputed by hand; `gateway.registry` feeds them from the events table.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054

RULE = ("promote when the period has ended, each arm has shown at least min_shown suggestions, and the 95% "
        "intervals of candidate − current for both the acceptance rate and the retained characters per shown "
        "suggestion reach 0 (upper bound >= 0: the candidate is not shown to be worse); roll back when either "
        "upper bound is below 0; before that, wait")


def in_candidate(canary_id: int, user: str, share: float) -> bool:
    """Whether `user` is routed to the candidate of canary `canary_id`."""
    h = int.from_bytes(hashlib.sha256(f"{canary_id}:{user}".encode()).digest(), "big")
    return h / 2**256 < share


@dataclass(frozen=True)
class Row:
    """One adoption event, as the canary reads it."""

    user: str
    kind: str
    suggestion: str
    adapter: str | None
    chars: int
    after_s: int | None
    ts: float


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of k successes in n trials (None for n == 0)."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float] | None:
    """(p1 − p2, lower, upper): Newcombe's hybrid score interval from the two Wilson intervals."""
    w1, w2 = wilson(k1, n1), wilson(k2, n2)
    if w1 is None or w2 is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    lo = d - math.sqrt((p1 - w1[0]) ** 2 + (w2[1] - p2) ** 2)
    hi = d + math.sqrt((w1[1] - p1) ** 2 + (p2 - w2[0]) ** 2)
    return d, lo, hi


def _ratio(pairs: Sequence[tuple[int, int]]) -> float:
    den = sum(d for _, d in pairs)
    return sum(n for n, _ in pairs) / den if den else 0.0


def _resample(pairs: Sequence[tuple[int, int]], rng: random.Random) -> float:
    return _ratio([pairs[rng.randrange(len(pairs))] for _ in pairs])


def _quantiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    lo = values[int(0.025 * (len(values) - 1))]
    hi = values[int(math.ceil(0.975 * (len(values) - 1)))]
    return lo, hi


def retention_check(rows: Iterable[Row], wanted: int) -> int | None:
    """The retention check compared: `wanted` when any event has it, else the largest present (None: none)."""
    present = {r.after_s for r in rows if r.kind == "retained" and r.after_s is not None}
    if wanted in present:
        return wanted
    return max(present) if present else None


def arm_figures(rows: Sequence[Row], start: float, end: float, check: int | None) -> dict[str, Any]:
    """One arm's figures from its rows: shown and accepted in [start, end); retained characters at `check` of the
    suggestions accepted in the period (whenever the check arrived); per user (retained, shown) for the bootstrap."""
    shown: dict[str, int] = {}
    accepted_ids: set[tuple[str, str]] = set()
    accepted = 0
    for r in rows:
        if not start <= r.ts < end:
            continue
        if r.kind == "shown":
            shown[r.user] = shown.get(r.user, 0) + 1
        elif r.kind == "accepted":
            accepted += 1
            accepted_ids.add((r.user, r.suggestion))
    retained: dict[str, int] = {}
    for r in rows:
        if r.kind == "retained" and r.after_s == check and (r.user, r.suggestion) in accepted_ids:
            retained[r.user] = retained.get(r.user, 0) + r.chars
    users = sorted(set(shown) | set(retained))
    n_shown = sum(shown.values())
    interval = wilson(accepted, n_shown)
    return {"users": len(users), "shown": n_shown, "accepted": accepted,
            "acceptance_rate": accepted / n_shown if n_shown else None,
            "acceptance_rate_ci95": list(interval) if interval else None,
            "retained_chars": sum(retained.values()),
            "retained_chars_per_shown": sum(retained.values()) / n_shown if n_shown else None,
            "_pairs": [(retained.get(u, 0), shown.get(u, 0)) for u in users]}


def compare(candidate: Sequence[Row], current: Sequence[Row], *, start: float, end: float, after_s: int,
            samples: int, seed: int) -> dict[str, Any]:
    """Both arms' figures and candidate − current with 95% intervals (a bootstrap seeded by `seed`)."""
    check = retention_check([*candidate, *current], after_s)
    arms = {"candidate": arm_figures(candidate, start, end, check), "current": arm_figures(current, start, end, check)}
    rng = random.Random(seed)
    boots: dict[str, list[float]] = {}
    for name, arm in arms.items():
        pairs = arm.pop("_pairs")
        if pairs and arm["shown"]:
            boots[name] = [_resample(pairs, rng) for _ in range(samples)]
            arm["retained_chars_per_shown_ci95"] = list(_quantiles(boots[name]))
        else:
            arm["retained_chars_per_shown_ci95"] = None
    c, k = arms["candidate"], arms["current"]
    rate = newcombe(c["accepted"], c["shown"], k["accepted"], k["shown"])
    diff: dict[str, Any] = {"acceptance_rate": None, "retained_chars_per_shown": None}
    if rate is not None:
        diff["acceptance_rate"] = {"value": rate[0], "ci95": [rate[1], rate[2]], "method": "Newcombe (Wilson)"}
    if "candidate" in boots and "current" in boots:
        d = [a - b for a, b in zip(boots["candidate"], boots["current"], strict=True)]
        diff["retained_chars_per_shown"] = {
            "value": c["retained_chars_per_shown"] - k["retained_chars_per_shown"], "ci95": list(_quantiles(d)),
            "method": f"bootstrap by user, {samples} resamples"}
    return {"arms": arms, "difference": diff, "retained_after_s": check}


def verdict(figures: dict[str, Any], *, now: float, ends_at: float, min_shown: int) -> tuple[str, str]:
    """("promote" | "rollback" | "wait", why) under RULE."""
    arms, diff = figures["arms"], figures["difference"]
    short = [f"{name} {arm['shown']}" for name, arm in arms.items() if arm["shown"] < min_shown]
    if now < ends_at:
        return "wait", f"the period ends in {(ends_at - now) / 60:.0f} min"
    if short:
        return "wait", (f"the period has ended but an arm has shown fewer than {min_shown} suggestions "
                        f"({', '.join(short)})")
    if diff["acceptance_rate"] is None or diff["retained_chars_per_shown"] is None:
        return "wait", "an arm has no shown suggestions to compare"
    worse = [f"{metric} (95% interval upper bound {d['ci95'][1]:+.4f} < 0)" for metric, d in diff.items()
             if d["ci95"][1] < 0]
    if worse:
        return "rollback", "the candidate is worse than the current: " + "; ".join(worse)
    return "promote", ("the candidate is not worse: upper bounds " + ", ".join(
        f"{metric} {d['ci95'][1]:+.4f}" for metric, d in diff.items()) + " are >= 0")
