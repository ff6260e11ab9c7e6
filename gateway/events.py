"""Adoption events from the language server: the wire schema, the company's policy, and storing a batch.

An event says a suggestion was shown, accepted (fully or partly), dismissed, or how many of its accepted
characters were still in the file `after_s` seconds later (30, 120, 300, 600). It carries lengths, language,
adapter, repository name and latency, never code: the schema forbids any other field. A batch is validated
whole and stored in one transaction, so it is stored entirely or not at all, and answered only once committed.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from core.errors import ValidationError
from gateway.accounts import Principal
from gateway.config import RETENTION_CHECKS_S, GatewayConfig
from gateway.models import Event
from gateway.routing import Routed

NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
MAX_CLOCK_SKEW_S = 300.0
MAX_AGE_S = 7 * 86400.0


class AdoptionEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["shown", "accepted", "dismissed", "retained"]
    id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")  # the suggestion's id
    ts: float | None = None  # when it happened (UNIX seconds, client clock); unset: when received
    language: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_+#.-]{1,32}$")
    adapter: str | None = Field(default=None, pattern=NAME)
    repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._@-][A-Za-z0-9._/@-]{0,199}$")
    chars: int = Field(default=0, ge=0, le=1_000_000)  # shown, accepted or retained characters
    partial: bool = False  # accepted: only part of the suggestion (a word, a line)
    after_s: int | None = None  # retained: seconds after acceptance
    latency_ms: float | None = Field(default=None, ge=0, le=3_600_000)

    @model_validator(mode="after")
    def _retention(self) -> AdoptionEvent:
        if self.kind == "retained" and self.after_s not in RETENTION_CHECKS_S:
            raise ValueError(f"`after_s` of a retained event must be one of {list(RETENTION_CHECKS_S)}, "
                             f"got {self.after_s!r}")
        if self.kind != "retained" and self.after_s is not None:
            raise ValueError(f"`after_s` belongs to retained events only, got it on a {self.kind!r} event")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[AdoptionEvent]


def policy(cfg: GatewayConfig) -> dict[str, object]:
    """What the gateway tells clients (`GET /v1/policy`): whether to send adoption events, and how; whether
    completions sent with `X-Inhouse-Suggestion-Id` are stored (then the client posts their outcome)."""
    return {"adoption_events": cfg.adoption_events, "retention_checks_s": list(RETENTION_CHECKS_S),
            "max_events_per_batch": cfg.max_events_per_batch, "store_suggestions": cfg.store_suggestions,
            "suggestions_retention_days": cfg.suggestions_retention_days}


def store_batch(engine: Engine, principal: Principal, batch: EventBatch, now: float | None = None,
                routed: Routed | None = None) -> int:
    """Store a validated batch in one transaction; returns how many events were stored. `routed`: where the
    user's requests without an adapter go now (gateway.routing; default: their team's default adapter), which
    an event without `adapter` is about: a canary's candidate for the users in its arm."""
    if routed is None:
        routed = Routed(*principal.default_adapter())
    now = time.time() if now is None else now
    rows = []
    for i, ev in enumerate(batch.events):
        ts = now if ev.ts is None else ev.ts
        if not now - MAX_AGE_S <= ts <= now + MAX_CLOCK_SKEW_S:
            raise ValidationError(f"`events.{i}.ts` must be within the last 7 days, got {ev.ts}")
        team: str | None
        adapter: str | None
        if ev.adapter:
            team, adapter = principal.team_for(ev.adapter), ev.adapter
            if team is None and ev.adapter == routed.adapter:  # routed there since the token was cached
                team = routed.team
        else:  # the editor named no adapter: its completions got what the user is routed to, so its events too
            team, adapter = routed.team, routed.adapter
        rows.append({"ts": ts, "day": int(ts // 86400), "user_id": principal.user_id, "team": team, "kind": ev.kind,
                     "suggestion": ev.id, "language": ev.language, "adapter": adapter, "repo": ev.repo,
                     "chars": ev.chars, "partial": ev.partial, "after_s": ev.after_s, "latency_ms": ev.latency_ms})
    if rows:
        with Session(engine) as s, s.begin():
            s.execute(insert(Event), rows)
    return len(rows)
