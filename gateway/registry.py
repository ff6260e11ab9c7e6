"""The adapter registry: versions of each team's adapters (`team/name@N`, served as `team.name.vN`), their
promotion and rollback, and canaries.

A version's state is candidate, canary, current, retired, rolled_back or refused; at most one version of a team
is current, and it is the team's `default_adapter` (what a request without an adapter gets), with access
granted. Every state change is one transaction that also appends an `admin` audit row and moves the routing
generation, which every gateway reads on each request (gateway.routing): a change from the CLI governs the
next request, no restart. Called by `inhouse adapters` (gateway.registry_cli) and the dashboard.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.artifacts import read_info
from core.errors import ValidationError
from gateway import adapter_files, canary
from gateway.accounts import NotFoundError
from gateway.config import GatewayConfig
from gateway.generation import bump
from gateway.models import Adapter, AdapterVersion, AuditRow, Canary, Event, Team, TeamAdapter, User
from gateway.reports import exam_headline

T = TypeVar("T")
REG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
REF_RE = re.compile(r"^([^/@]+)/([^/@]+)(?:@(\d+))?$")
MAX_ID = 64  # the gateway's adapter names are at most 64 characters


def check_reg_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not REG_NAME_RE.match(value):
        raise ValidationError(f"`{kind}` must be 1-32 letters, digits, '_' or '-' starting with a letter or digit "
                              f"(so `team.name.vN` parses back), got {value!r}")
    return value


def parse_ref(ref: str) -> tuple[str, str, int | None]:
    """`team/name@N` -> (team, name, N); `team/name` -> (team, name, None): the team's current of that name."""
    m = REF_RE.match(ref or "")
    if not m:
        raise ValidationError(f"a version is named `team/name@N` (or `team/name` for the current one), got {ref!r}")
    return check_reg_name("team", m[1]), check_reg_name("name", m[2]), int(m[3]) if m[3] else None


def describe(v: AdapterVersion, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ref": f"{v.team}/{v.name}@{v.version}", "adapter_id": v.adapter_id, "team": v.team, "name": v.name,
        "version": v.version, "state": v.state, "content_sha256": v.content_sha256, "data_sha256": v.data_sha256,
        "base_model": v.base_model, "profile": json.loads(v.profile_json) if v.profile_json else None,
        "git_sha": v.git_sha, "exam": exam_headline(v.report_json), "reason": v.reason,
        "created_at": v.created_at, "changed_at": v.changed_at}
    if full:
        out["report"] = json.loads(v.report_json) if v.report_json else None
    return out


class Registry:
    def __init__(self, engine: Engine, actor: str = "cli", cfg: GatewayConfig | None = None) -> None:
        self.engine = engine
        self.actor = actor
        self.cfg = cfg or GatewayConfig()

    # ---- plumbing ------------------------------------------------------------------------------------------------
    def _audit(self, s: Session, route: str, detail: dict[str, Any], team: str | None = None,
               adapter: str | None = None) -> None:
        s.add(AuditRow(ts=time.time(), kind="admin", actor=self.actor[:64], team=team, adapter=adapter, route=route,
                       status=200, detail=json.dumps(detail, sort_keys=True)))

    def _write(self, fn: Callable[[Session], T]) -> T:
        with Session(self.engine) as s, s.begin():
            return fn(s)

    def _version(self, s: Session, ref: str) -> AdapterVersion:
        team, name, number = parse_ref(ref)
        q = select(AdapterVersion).where(AdapterVersion.team == team, AdapterVersion.name == name)
        if number is None:
            v = s.scalar(q.where(AdapterVersion.state == "current"))
            if v is None:
                raise NotFoundError(f"{team}/{name} has no current version (name one: {team}/{name}@N)")
            return v
        v = s.scalar(q.where(AdapterVersion.version == number))
        if v is None:
            raise NotFoundError(f"no version {ref!r} in the registry (`inhouse adapters list {team}`)")
        return v

    def _current(self, s: Session, team: str) -> AdapterVersion | None:
        return s.scalar(select(AdapterVersion).where(AdapterVersion.team == team, AdapterVersion.state == "current"))

    def _running(self, s: Session, team: str) -> Canary | None:
        return s.scalar(select(Canary).where(Canary.team == team, Canary.state == "running"))

    def _team(self, s: Session, team: str) -> Team:
        t = s.scalar(select(Team).where(Team.name == team))
        if t is None:
            raise NotFoundError(f"no team named {team!r} in the gateway (`inhouse admin teams add {team}`)")
        return t

    def _set(self, s: Session, v: AdapterVersion, state: str, reason: str | None, route: str) -> None:
        old, v.state, v.changed_at = v.state, state, time.time()
        if reason is not None:
            v.reason = reason
        self._audit(s, route, {"ref": f"{v.team}/{v.name}@{v.version}", "from": old, "to": state, "reason": reason},
                    team=v.team, adapter=v.adapter_id)

    def _grant(self, s: Session, team: Team, adapter_id: str) -> None:
        if s.get(TeamAdapter, (team.id, adapter_id)) is None:
            s.add(TeamAdapter(team_id=team.id, adapter=adapter_id))

    def _make_current(self, s: Session, v: AdapterVersion, reason: str | None, route: str,
                      remember_previous: bool = True) -> AdapterVersion | None:
        """`v` becomes its team's current (the team's default adapter); the previous current is retired."""
        team = self._team(s, v.team)
        prev = self._current(s, v.team)
        if prev is not None and prev.id != v.id:
            self._set(s, prev, "retired", f"replaced by {v.team}/{v.name}@{v.version}", route)
        if remember_previous and (prev is None or prev.id != v.id):
            v.previous_id = prev.id if prev is not None else None
        self._set(s, v, "current", reason, route)
        self._grant(s, team, v.adapter_id)
        team.default_adapter = v.adapter_id
        bump(s)
        return prev

    # ---- versions ------------------------------------------------------------------------------------------------
    def register(self, team: str, name: str, adapter_dir: Path, serve_dir: Path, report_json: str | None = None,
                 reason: str | None = None) -> dict[str, Any]:
        """A new candidate version of `team/name` from `adapter_dir`, copied atomically to `serve_dir/{id}`; the
        same files registered again give back the existing version (`created` false)."""
        check_reg_name("team", team)
        check_reg_name("name", name)
        adapter_dir, serve_dir = Path(adapter_dir), Path(serve_dir)
        adapter_files.check_adapter_dir(adapter_dir)
        if report_json is not None:
            try:
                json.loads(report_json)
            except ValueError as exc:
                raise ValidationError(f"`--report` must be JSON (an exam report): {exc}") from exc
        info = read_info(adapter_dir)
        sha = adapter_files.content_sha256(adapter_dir)
        with Session(self.engine) as s:
            same = s.scalar(select(AdapterVersion).where(AdapterVersion.team == team, AdapterVersion.name == name,
                                                         AdapterVersion.content_sha256 == sha))
            if same is not None:
                adapter_files.place(adapter_dir, serve_dir, same.adapter_id, sha)  # heals a directory removed since
                return {**describe(same), "created": False}
            number = (s.scalar(select(func.max(AdapterVersion.version)).where(
                AdapterVersion.team == team, AdapterVersion.name == name)) or 0) + 1
        adapter_id = f"{team}.{name}.v{number}"
        if len(adapter_id) > MAX_ID:
            raise ValidationError(f"the served id {adapter_id!r} is longer than {MAX_ID} characters: shorten the team "
                                  "or adapter name")
        adapter_files.place(adapter_dir, serve_dir, adapter_id, sha)
        profile = info.get("profile")
        row = dict(team=team, name=name, version=number, adapter_id=adapter_id, content_sha256=sha,
                   data_sha256=info.get("dataset_manifest_sha256"), base_model=info.get("base_model"),
                   profile_json=json.dumps(profile, sort_keys=True) if profile is not None else None,
                   git_sha=info.get("git_sha"), report_json=report_json, reason=reason)
        try:
            return {**self._insert(row), "created": True}
        except IntegrityError as exc:  # another process registered the same version at the same moment
            with Session(self.engine) as s:
                same = s.scalar(select(AdapterVersion).where(AdapterVersion.adapter_id == adapter_id))
                if same is not None and same.content_sha256 == sha:
                    return {**describe(same), "created": False}
            raise ValidationError(f"version {team}/{name}@{number} was registered by another process with other "
                                  "files; register again") from exc

    def _insert(self, row: dict[str, Any]) -> dict[str, Any]:
        """The version's row, the gateway's adapter (so access rules know it) and the team's access, at once."""
        def run(s: Session) -> dict[str, Any]:
            now = time.time()
            v = AdapterVersion(state="candidate", created_at=now, changed_at=now, **row)
            s.add(v)
            if s.get(Adapter, row["adapter_id"]) is None:
                s.add(Adapter(name=row["adapter_id"], report_json=row["report_json"], created_at=now))
            s.flush()
            team = s.scalar(select(Team).where(Team.name == row["team"]))
            if team is not None:
                self._grant(s, team, row["adapter_id"])
            self._audit(s, "registry.register", {"ref": f"{v.team}/{v.name}@{v.version}", "to": "candidate",
                                                 "content_sha256": v.content_sha256, "reason": v.reason},
                        team=v.team, adapter=v.adapter_id)
            return describe(v)

        return self._write(run)

    def versions(self, team: str | None = None) -> list[dict[str, Any]]:
        q = select(AdapterVersion).order_by(AdapterVersion.team, AdapterVersion.name, AdapterVersion.version)
        if team is not None:
            q = q.where(AdapterVersion.team == check_reg_name("team", team))
        with Session(self.engine) as s:
            return [describe(v) for v in s.scalars(q)]

    def show(self, ref: str) -> dict[str, Any]:
        with Session(self.engine) as s:
            return describe(self._version(s, ref), full=True)

    def diff(self, ref_a: str, ref_b: str) -> dict[str, Any]:
        """Two versions side by side: exam headline, data hash, base, profile fields, git sha; `differs` marks."""
        a, b = self.show(ref_a), self.show(ref_b)
        rows: list[dict[str, Any]] = []

        def add(field: str, x: Any, y: Any) -> None:
            rows.append({"field": field, "a": x, "b": y, "differs": x != y})

        for key, value in _flat(a["exam"] or {}, "exam").items():
            add(key, value, _flat(b["exam"] or {}, "exam").get(key))
        for key, value in _flat(b["exam"] or {}, "exam").items():
            if key not in {r["field"] for r in rows}:
                add(key, None, value)
        for key in ("data_sha256", "base_model", "git_sha", "content_sha256", "state"):
            add(key, a[key], b[key])
        pa, pb = a["profile"] or {}, b["profile"] or {}
        for key in sorted(set(pa) | set(pb)):
            add(f"profile.{key}", pa.get(key), pb.get(key))
        return {"a": a["ref"], "b": b["ref"], "fields": rows, "differs": [r["field"] for r in rows if r["differs"]]}

    def promote(self, ref: str, reason: str | None = None) -> dict[str, Any]:
        """`ref` becomes its team's current version (the previous current is retired)."""
        with Session(self.engine) as s:
            v = self._version(s, ref)
            running = self._running(s, v.team)
        if running is not None:
            if running.candidate_id == v.id:
                return self.canary_stop(v.team, promote=True, reason=reason or "promoted by an admin")
            raise ValidationError(f"team {v.team!r} has a canary running; end it first "
                                  f"(`inhouse adapters canary stop {v.team} --promote|--rollback`)")

        def run(s: Session) -> dict[str, Any]:
            v = self._version(s, ref)
            if v.state == "refused":
                raise ValidationError(f"{ref} was refused by the exam gate ({v.reason}); it cannot be promoted")
            prev = self._make_current(s, v, reason or "promoted", "registry.promote")
            return {**describe(v), "previous": describe(prev) if prev is not None and prev.id != v.id else None}

        return self._write(run)

    def rollback(self, team: str, to: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """The team's current version is rolled back; the version it replaced (or `to`) is current again, or the
        base model when it replaced none."""
        check_reg_name("team", team)

        def run(s: Session) -> dict[str, Any]:
            if self._running(s, team) is not None:
                raise ValidationError(f"team {team!r} has a canary running; end it with "
                                      f"`inhouse adapters canary stop {team} --rollback`")
            cur = self._current(s, team)
            if cur is None:
                raise ValidationError(f"team {team!r} has no current version to roll back")
            target = None
            if to is not None:
                target = self._version(s, to)
                if target.team != team or target.state not in ("retired", "rolled_back"):
                    raise ValidationError(f"`--to` must be a former current version of team {team!r} (retired or "
                                          f"rolled_back), got {to} ({target.team}, {target.state})")
            elif cur.previous_id is not None:
                target = s.get(AdapterVersion, cur.previous_id)
            why = reason or "rolled back"
            self._set(s, cur, "rolled_back", why, "registry.rollback")
            if target is not None:
                self._make_current(s, target, f"reinstated: {why}", "registry.rollback", remember_previous=False)
            else:
                self._team(s, team).default_adapter = None
                bump(s)
            return {"rolled_back": describe(cur), "current": describe(target) if target is not None else None}

        return self._write(run)

    def refuse(self, ref: str, reason: str) -> dict[str, Any]:
        """The exam gate refused a candidate: it is never promoted."""
        if not reason.strip():
            raise ValidationError("`--reason` must say why the version was refused")

        def run(s: Session) -> dict[str, Any]:
            v = self._version(s, ref)
            if v.state not in ("candidate", "refused"):
                raise ValidationError(f"only a candidate can be refused; {ref} is {v.state}")
            self._set(s, v, "refused", reason, "registry.refuse")
            return describe(v)

        return self._write(run)

    # ---- canaries ------------------------------------------------------------------------------------------------
    def canary_start(self, ref: str, share: float | None = None, minutes: float | None = None,
                     policy: str | None = None, min_shown: int | None = None) -> dict[str, Any]:
        share = self.cfg.canary_share if share is None else share
        minutes = self.cfg.canary_minutes if minutes is None else minutes
        policy = policy or self.cfg.canary_policy
        min_shown = self.cfg.canary_min_shown if min_shown is None else min_shown
        if not 0 < share < 1:
            raise ValidationError(f"`--share` must be in (0, 1), got {share}")
        if minutes <= 0:
            raise ValidationError(f"`--minutes` must be > 0, got {minutes}")
        if policy not in ("auto", "manual"):
            raise ValidationError(f"`--policy` must be auto or manual, got {policy!r}")
        if min_shown < 0:
            raise ValidationError(f"`--min-shown` must be >= 0, got {min_shown}")

        def run(s: Session) -> dict[str, Any]:
            v = self._version(s, ref)
            team = self._team(s, v.team)
            running = self._running(s, v.team)
            if running is not None:
                raise ValidationError(f"team {v.team!r} already has a canary running (#{running.id}); one at a time")
            if v.state != "candidate":
                raise ValidationError(f"only a candidate can go to canary; {ref} is {v.state}")
            cur = self._current(s, v.team)
            now = time.time()
            c = Canary(team=v.team, candidate_id=v.id, current_id=cur.id if cur else None, share=share, policy=policy,
                       min_shown=min_shown, started_at=now, ends_at=now + minutes * 60, state="running")
            s.add(c)
            s.flush()
            self._set(s, v, "canary", f"canary #{c.id}: {share:g} of {v.team} for {minutes:g} min", "registry.canary")
            self._grant(s, team, v.adapter_id)
            bump(s)
            return self._canary_view(s, c, with_figures=False)

        return self._write(run)

    def _canary_view(self, s: Session, c: Canary, with_figures: bool = True,
                     now: float | None = None) -> dict[str, Any]:
        cand = s.get(AdapterVersion, c.candidate_id)
        cur = s.get(AdapterVersion, c.current_id) if c.current_id is not None else None
        assert cand is not None
        out: dict[str, Any] = {
            "id": c.id, "team": c.team, "state": c.state, "share": c.share, "policy": c.policy,
            "min_shown": c.min_shown, "started_at": c.started_at, "ends_at": c.ends_at, "ended_at": c.ended_at,
            "candidate": {"ref": f"{cand.team}/{cand.name}@{cand.version}", "adapter_id": cand.adapter_id},
            "current": ({"ref": f"{cur.team}/{cur.name}@{cur.version}", "adapter_id": cur.adapter_id}
                        if cur is not None else {"ref": None, "adapter_id": None}),
            "rule": canary.RULE}
        if not with_figures:
            return out
        if c.state != "running" and c.result_json:
            out.update(json.loads(c.result_json))
            return out
        now = time.time() if now is None else now
        figures = self._figures(s, c, cand.adapter_id, cur.adapter_id if cur else None, now)
        decision, why = canary.verdict(figures, now=now, ends_at=c.ends_at, min_shown=c.min_shown)
        out.update(figures, verdict=decision, verdict_reason=why)
        return out

    def _figures(self, s: Session, c: Canary, cand_id: str, cur_id: str | None, now: float) -> dict[str, Any]:
        end = min(now, c.ends_at)
        arm_adapter = or_(Event.adapter == cand_id,
                          Event.adapter == cur_id if cur_id is not None
                          else and_(Event.adapter.is_(None), Event.team == c.team))
        q = (select(Event, User.name).join(User, User.id == Event.user_id)
             .where(arm_adapter, Event.ts >= c.started_at, Event.ts < end + 700))
        arms: dict[str, list[canary.Row]] = {"candidate": [], "current": []}
        for e, user in s.execute(q):
            arm = "candidate" if canary.in_candidate(c.id, user, c.share) else "current"
            if e.adapter != (cand_id if arm == "candidate" else cur_id):
                continue  # a user of one arm who asked for the other arm's adapter by name
            arms[arm].append(canary.Row(user, e.kind, e.suggestion, e.adapter, e.chars, e.after_s, e.ts))
        return canary.compare(arms["candidate"], arms["current"], start=c.started_at, end=end,
                              after_s=self.cfg.canary_retained_after_s, samples=self.cfg.canary_bootstrap,
                              seed=c.id)

    def canary_status(self, team: str, now: float | None = None) -> dict[str, Any]:
        """The team's running canary (else its latest) with both arms' figures, the rule and its verdict."""
        check_reg_name("team", team)
        with Session(self.engine) as s:
            c = self._running(s, team) or s.scalar(select(Canary).where(Canary.team == team)
                                                   .order_by(Canary.id.desc()).limit(1))
            if c is None:
                raise NotFoundError(f"team {team!r} has had no canary (`inhouse adapters canary start REF`)")
            return self._canary_view(s, c, now=now)

    def canaries(self, limit: int = 10) -> list[dict[str, Any]]:
        """The running canaries and the latest ended ones, newest first (for the dashboard)."""
        with Session(self.engine) as s:
            rows = list(s.scalars(select(Canary).order_by((Canary.state == "running").desc(), Canary.id.desc())
                                  .limit(limit)))
            return [self._canary_view(s, c) for c in rows]

    def canary_decide(self, team: str, apply: bool = False, now: float | None = None) -> dict[str, Any]:
        """{"decision", "reason", "arms", ...}: the rule's verdict, applied under policy auto or with `apply`;
        under policy manual (without `apply`) a verdict is reported as "wait" for an admin."""
        status = self.canary_status(team, now=now)
        if status["state"] != "running":
            raise ValidationError(f"team {team!r} has no canary running (the last, #{status['id']}, was "
                                  f"{status['state']})")
        verdict, why = status["verdict"], status["verdict_reason"]
        out = {"decision": verdict, "reason": why, "verdict": verdict, "applied": False, "canary": status["id"],
               "rule": status["rule"], "arms": status["arms"], "difference": status["difference"]}
        if verdict == "wait":
            return out
        if status["policy"] != "auto" and not apply:
            verb = "--promote" if verdict == "promote" else "--rollback"
            out.update(decision="wait", reason=f"policy manual: the rule says {verdict} ({why}); an admin decides: "
                                               f"`inhouse adapters canary stop {team} {verb}` (or `canary decide "
                                               f"{team} --apply`)")
            return out
        self.canary_stop(team, promote=verdict == "promote", reason=f"canary decided: {why}", now=now)
        out["applied"] = True
        return out

    def canary_stop(self, team: str, promote: bool, reason: str | None = None,
                    now: float | None = None) -> dict[str, Any]:
        """End the team's canary: its candidate becomes current (`promote`) or is rolled back."""
        check_reg_name("team", team)

        def run(s: Session) -> dict[str, Any]:
            c = self._running(s, team)
            if c is None:
                raise ValidationError(f"team {team!r} has no canary running")
            final = self._canary_view(s, c, now=now)
            cand = s.get(AdapterVersion, c.candidate_id)
            assert cand is not None
            why = reason or ("promoted by an admin" if promote else "rolled back by an admin")
            if promote:
                self._make_current(s, cand, why, "registry.canary")
            else:
                self._set(s, cand, "rolled_back", why, "registry.canary")
            c.state, c.ended_at = ("promoted" if promote else "rolled_back"), time.time()
            keep = {k: final[k] for k in ("arms", "difference", "retained_after_s", "verdict", "verdict_reason")}
            c.result_json = json.dumps({**keep, "outcome_reason": why})
            bump(s)
            cur = self._current(s, team)
            return {"canary": c.id, "outcome": c.state, "reason": why,
                    "current": describe(cur) if cur is not None else None}

        return self._write(run)


def _flat(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}"
        if k == "by_kind":
            continue  # per span kind: `inhouse adapters show` has them; the diff keeps the headline
        if isinstance(v, dict):
            out.update(_flat(v, key))
        elif not isinstance(v, list):
            out[key] = v
    return out
