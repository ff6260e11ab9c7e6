"""Which adapter a request without one gets: the team's default (its current version), or, while the team has a
canary running, the candidate for the users in the candidate arm.

Tokens are cached for `auth_cache_s`, routes are not: every request reads one counter (the routing generation,
moved in the same transaction as any change of a team's default or canary) and reloads the routes when it
moved. So a promote, rollback or canary change from another process governs the very next request. Used by
`gateway.proxy`, the `/info` answer and the adoption events (an event without an adapter counts for the arm the
user was routed to).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.canary import in_candidate
from gateway.generation import GENERATION as _GENERATION
from gateway.models import AdapterVersion, Canary, Team

if TYPE_CHECKING:
    from gateway.accounts import Principal




class Routed(NamedTuple):
    team: str | None
    adapter: str | None
    canary: int | None = None  # the team's running canary, if any
    arm: str | None = None  # "candidate" or "current" while a canary runs


@dataclass(frozen=True)
class CanaryRoute:
    id: int
    candidate: str
    share: float


@dataclass(frozen=True)
class Routes:
    generation: int
    defaults: dict[str, str | None]  # team -> its default adapter (its current version)
    canaries: dict[str, CanaryRoute]  # team -> its running canary

    def default_for(self, principal: Principal, wanted_team: str | None = None) -> Routed:
        """What a request of `principal` naming no adapter gets (the first of their teams, by name, that routes
        them to an adapter; `wanted_team` when given)."""
        teams = [t for t, _, _ in principal.teams if not wanted_team or t == wanted_team]
        for team in teams:
            c = self.canaries.get(team)
            if c is not None and in_candidate(c.id, principal.user, c.share):
                return Routed(team, c.candidate, c.id, "candidate")
            adapter = self.defaults.get(team)
            if adapter:
                return Routed(team, adapter, c.id if c else None, "current" if c else None)
        if not teams:
            return Routed(None, None)
        c = self.canaries.get(teams[0])
        return Routed(teams[0], None, c.id if c else None, "current" if c else None)


class Router:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._routes: Routes | None = None
        self._lock = threading.Lock()
        self.reloads = 0

    def current(self) -> Routes:
        """The routes as the database has them now (one primary-key read when nothing changed)."""
        with self.engine.connect() as conn:
            generation = conn.execute(_GENERATION).scalar() or 0
            routes = self._routes
            if routes is not None and routes.generation == generation:
                return routes
        with Session(self.engine) as s:  # a change: read the generation again with what it covers
            generation = s.execute(_GENERATION).scalar() or 0
            defaults = {name: default for name, default in s.execute(select(Team.name, Team.default_adapter))}
            canaries = {team: CanaryRoute(cid, adapter_id, share) for cid, team, share, adapter_id in s.execute(
                select(Canary.id, Canary.team, Canary.share, AdapterVersion.adapter_id)
                .join(AdapterVersion, AdapterVersion.id == Canary.candidate_id).where(Canary.state == "running"))}
        fresh = Routes(generation, defaults, canaries)
        with self._lock:
            if self._routes is None or self._routes.generation <= generation:
                self._routes = fresh
                self.reloads += 1
        return fresh
