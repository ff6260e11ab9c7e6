"""The numbers behind the `/admin` dashboard: adoption, quality, service, over a time range and filters.

Computed from the stored rows of the range (events and request audit rows), so every number on the page can
be recomputed by hand from the same rows (the tests do). Called by `gateway.dashboard`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.config import RETENTION_CHECKS_S
from gateway.models import Adapter, AuditRow, Event

# Routes the gateway answers itself: left out of the service figures, which are about the model servers.
OWN_ROUTES = ("/v1/events", "/v1/policy", "/info", "/v1/models")


@dataclass(frozen=True)
class Filters:
    since: float
    until: float
    team: str | None = None
    language: str | None = None
    adapter: str | None = None
    repo: str | None = None


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _events(engine: Engine, f: Filters) -> list[Event]:
    q = select(Event).where(Event.ts >= f.since, Event.ts < f.until)
    for col, value in ((Event.team, f.team), (Event.language, f.language), (Event.adapter, f.adapter),
                       (Event.repo, f.repo)):
        if value:
            q = q.where(col == value)
    with Session(engine) as s:
        return list(s.scalars(q))


def adoption_of(events: list[Event]) -> dict[str, Any]:
    shown = [e for e in events if e.kind == "shown"]
    accepted = [e for e in events if e.kind == "accepted"]
    accepted_chars: dict[tuple[int, str], int] = {}
    for e in accepted:
        accepted_chars[(e.user_id, e.suggestion)] = accepted_chars.get((e.user_id, e.suggestion), 0) + e.chars
    curve = []
    for after in RETENTION_CHECKS_S:
        checks = [e for e in events if e.kind == "retained" and e.after_s == after]
        retained = sum(e.chars for e in checks)
        base = sum(accepted_chars.get((e.user_id, e.suggestion), 0) for e in checks)
        curve.append({"after_s": after, "checks": len(checks), "retained_chars": retained,
                      "accepted_chars": base, "share": round(retained / base, 4) if base else None})
    days: dict[int, set[int]] = {}
    for e in events:
        days.setdefault(e.day, set()).add(e.user_id)
    return {
        "shown": len(shown), "accepted": len(accepted),
        "accepted_partial": sum(1 for e in accepted if e.partial),
        "dismissed": sum(1 for e in events if e.kind == "dismissed"),
        "acceptance_rate": round(len(accepted) / len(shown), 4) if shown else None,
        "shown_chars": sum(e.chars for e in shown), "accepted_chars": sum(e.chars for e in accepted),
        "active_users": len({e.user_id for e in events}),
        "active_users_per_day": [{"day": d, "users": len(u)} for d, u in sorted(days.items())],
        "retention": curve,
    }


def exam_headline(report_json: str | None) -> dict[str, Any] | None:
    """The adapter's exam headline: tuned and best base EM/ES overall and per span kind."""
    if not report_json:
        return None
    report = json.loads(report_json)
    runs = report.get("runs") or {}
    head = report.get("headline") or {}
    base_key = head.get("base_best_mode") or next((k for k in runs if k.startswith("base/")), None)
    tuned_key = head.get("tuned_mode") or next((k for k in runs if k.startswith("tuned/")), None)

    def pick(key: str | None) -> dict[str, Any] | None:
        run = runs.get(key) if key else None
        if not run:
            return None
        o = run.get("overall") or {}
        return {"run": key, "em": o.get("exact_match"), "es": o.get("edit_similarity"),
                "by_kind": {k: {"em": v.get("exact_match"), "es": v.get("edit_similarity")}
                            for k, v in (run.get("by_kind") or {}).items()}}

    return {"base": pick(base_key), "tuned": pick(tuned_key), "n": report.get("n")}


def quality(engine: Engine, events: list[Event]) -> list[dict[str, Any]]:
    with Session(engine) as s:
        adapters = [(a.name, a.report_json) for a in s.scalars(select(Adapter).order_by(Adapter.name))]
    out = []
    for name, report_json in adapters:
        live = adoption_of([e for e in events if e.adapter == name])
        out.append({"adapter": name, "exam": exam_headline(report_json),
                    "live": {k: live[k] for k in ("shown", "accepted", "acceptance_rate", "accepted_chars",
                                                  "retention")}})
    return out


def service(engine: Engine, f: Filters) -> list[dict[str, Any]]:
    q = select(AuditRow.upstream, AuditRow.status, AuditRow.latency_ms).where(
        AuditRow.kind == "request", AuditRow.route.notin_(OWN_ROUTES), AuditRow.ts >= f.since, AuditRow.ts < f.until)
    if f.team:
        q = q.where(AuditRow.team == f.team)
    if f.adapter:
        q = q.where(AuditRow.adapter == f.adapter)
    groups: dict[str, list[tuple[int, float | None]]] = {}
    with Session(engine) as s:
        for upstream, status, latency in s.execute(q):
            groups.setdefault(upstream or "gateway", []).append((status, latency))
    out = []
    for upstream, items in sorted(groups.items()):
        ok = [lat for st, lat in items if st < 400 and lat is not None]
        out.append({"upstream": upstream, "requests": len(items),
                    "p50_ms": _percentile(ok, 50), "p95_ms": _percentile(ok, 95),
                    "errors": sum(1 for st, _ in items if st >= 500),
                    "client_errors": sum(1 for st, _ in items if 400 <= st < 500 and st != 429),
                    "rate_limited": sum(1 for st, _ in items if st == 429)})
    return out


def summary(engine: Engine, f: Filters) -> dict[str, Any]:
    events = _events(engine, f)
    return {"filters": f.__dict__, "adoption": adoption_of(events), "quality": quality(engine, events),
            "service": service(engine, f)}


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """The values each filter can take (what the dashboard's drop-downs list)."""
    with Session(engine) as s:
        def distinct(col) -> list[str]:
            return sorted(v for v in s.scalars(select(col).distinct()) if v)

        return {"team": distinct(Event.team), "language": distinct(Event.language),
                "adapter": distinct(Event.adapter), "repo": distinct(Event.repo)}
