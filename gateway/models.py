"""The gateway's tables (SQLAlchemy 2 declarative): users, teams, tokens, adapter access, audit, events, and the
adapter registry (versions, canaries, the routing generation) and the suggestions kept when the company opts in
(`store_suggestions`).

The schema is created and changed only by the Alembic migrations in `gateway/migrations/`; a test checks that
the migrations produce exactly these tables. Times are UNIX seconds (float); `day` is the UTC day number, so
per-day counts need no date functions that differ between SQLite and PostgreSQL. No column ever holds code,
except those of `suggestions`, which exists for that and is written only when the policy says so.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    default_adapter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)


class Adapter(Base):
    __tablename__ = "adapters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    report_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # the exam's report.json, verbatim
    created_at: Mapped[float] = mapped_column(Float)


class TeamAdapter(Base):
    __tablename__ = "team_adapters"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    adapter: Mapped[str] = mapped_column(ForeignKey("adapters.name", ondelete="CASCADE"), primary_key=True)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the secret; the secret is never kept
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so people can tell tokens apart
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditRow(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "request" or "admin"
    actor: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    adapter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route: Mapped[str] = mapped_column(String(128))
    status: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    generated_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    upstream: Mapped[str | None] = mapped_column(String(256), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # admin changes: what changed (never code)


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float)
    day: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # shown, accepted, dismissed, retained
    suggestion: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(32), nullable=True)
    adapter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    repo: Mapped[str | None] = mapped_column(String(200), nullable=True)
    chars: Mapped[int] = mapped_column(Integer, default=0)  # shown / accepted / retained characters
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    after_s: Mapped[int | None] = mapped_column(Integer, nullable=True)  # retention check: 30, 120, 300, 600
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


Index("ix_events_ts", Event.ts)
Index("ix_events_team_ts", Event.team, Event.ts)


class AdapterVersion(Base):
    """One registered version of a team's adapter (`team/name@N`), served under `adapter_id` = `team.name.vN`.

    `state` is candidate, canary, current, retired, rolled_back or refused; at most one version of a team is
    current (what a request without an adapter gets). `previous_id` is the version that was current when this
    one was promoted: `rollback` goes back to it."""

    __tablename__ = "adapter_versions"
    __table_args__ = (UniqueConstraint("team", "name", "version", name="uq_adapter_versions_team_name_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    adapter_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    content_sha256: Mapped[str] = mapped_column(String(64))  # of the adapter's files, as copied to the servers
    data_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # inhouse.json dataset_manifest_sha256
    base_model: Mapped[str | None] = mapped_column(String(512), nullable=True)
    profile_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # the completion profile of inhouse.json
    git_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # the exam report, verbatim
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the last state change happened
    previous_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    changed_at: Mapped[float] = mapped_column(Float)


Index("ix_adapter_versions_team_state", AdapterVersion.team, AdapterVersion.state)


class Canary(Base):
    """A share of a team's users routed to a candidate version for a period; `state` running, promoted or
    rolled_back. `current_id` is the team's current version when it started (None: the base model)."""

    __tablename__ = "canaries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id"))
    current_id: Mapped[int | None] = mapped_column(ForeignKey("adapter_versions.id"), nullable=True)
    share: Mapped[float] = mapped_column(Float)
    policy: Mapped[str] = mapped_column(String(16))  # auto or manual
    min_shown: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # the statistics and decision at the end


class RoutingGeneration(Base):
    """One row counting changes of what a request without an adapter gets (team defaults, canaries): a gateway
    reads it on every request and reloads its routes when it moved, so a change from the CLI governs the next
    request."""

    __tablename__ = "routing_generation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)


class StoredSuggestion(Base):
    """One completion kept for preference tuning: the prompt as the model saw it, what it generated, and what the
    user ended with (`final`, from the language server's outcome)."""

    __tablename__ = "suggestions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suggestion: Mapped[str] = mapped_column(String(64), unique=True)  # the client's id (X-Inhouse-Suggestion-Id)
    ts: Mapped[float] = mapped_column(Float)
    user_id: Mapped[int] = mapped_column(Integer)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    adapter: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the adapter served (None: the base)
    route: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(Text)  # TGI `inputs` / OpenAI `prompt`, verbatim
    generated: Mapped[str] = mapped_column(Text)  # the model's text (plain answer or the stream's tokens)
    shown: Mapped[str | None] = mapped_column(Text, nullable=True)  # outcome: what the editor showed
    final: Mapped[str | None] = mapped_column(Text, nullable=True)  # outcome: what stood there once the user was done
    outcome_ts: Mapped[float | None] = mapped_column(Float, nullable=True)


Index("ix_suggestions_ts", StoredSuggestion.ts)
Index("ix_suggestions_team_ts", StoredSuggestion.team, StoredSuggestion.ts)
