"""Stored suggestions (opt-in): what a completion was asked and answered, what the user ended with, and the
preference pairs exported from them for DPO (`inhouse dpo`).

Off unless `[gateway] store_suggestions` is on. A completion request that carries `X-Inhouse-Suggestion-Id`
has its prompt (TGI `inputs` / OpenAI `prompt`), the adapter served, user, team, time and the generated text
(plain or streamed) kept; the language server later posts the outcome (`POST /v1/suggestions/outcome`): the
text it showed and the text that stood at its place once the user was done (`final`). Rows older than
`suggestions_retention_days` are deleted on write (at most once a minute) and by `inhouse admin suggestions purge`.
Called by gateway.proxy (capture), gateway.app (the outcome route) and gateway.cli (export, purge).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import ValidationError
from gateway.accounts import ForbiddenError, NotFoundError, Principal
from gateway.models import StoredSuggestion

log = logging.getLogger(__name__)

HEADER = "X-Inhouse-Suggestion-Id"
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # the adoption events' suggestion id
MAX_TEXT = 1_000_000  # characters of a prompt, generation or outcome kept (more: not stored)
PURGE_EVERY_S = 60.0


def suggestion_id(value: str | None) -> str | None:
    """The header's id (None when absent); a ValidationError naming the header when malformed."""
    if value is None:
        return None
    if not ID_RE.match(value):
        raise ValidationError(f"`{HEADER}` must be 1-64 letters, digits, '.', '_', ':' or '-', got {value[:80]!r}")
    return value


def prompt_of(body: dict[str, Any], openai: bool) -> str | None:
    """The prompt the model sees: TGI's `inputs`, OpenAI's `prompt` (a single string only)."""
    value = body.get("prompt" if openai else "inputs")
    return value if isinstance(value, str) and len(value) <= MAX_TEXT else None


def generated_of(content: bytes, openai: bool) -> str | None:
    """The generated text of a plain answer (TGI `generated_text`, OpenAI `choices[0].text`)."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    if isinstance(data, list) and data:  # TGI's compat route answers a list
        data = data[0]
    if not isinstance(data, dict):
        return None
    if openai:
        choices = data.get("choices")
        text = choices[0].get("text") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
            else None
    else:
        text = data.get("generated_text")
    return text if isinstance(text, str) else None


class StreamText:
    """The generated text of a server-sent-event stream, fed the raw chunks as they pass through."""

    def __init__(self, openai: bool) -> None:
        self.openai = openai
        self._pending = b""
        self._parts: list[str] = []
        self._final: str | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._line(line.strip())

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:") or self._size > MAX_TEXT:
            return
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        text: Any = None
        if self.openai:
            choices = data.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                text = choices[0].get("text")
        else:
            if isinstance(data.get("generated_text"), str):
                self._final = data["generated_text"]  # TGI's last event: the whole text, special tokens skipped
            token = data.get("token")
            if isinstance(token, dict) and not token.get("special"):
                text = token.get("text")
        if isinstance(text, str):
            self._parts.append(text)
            self._size += len(text)

    @property
    def text(self) -> str | None:
        if self._size > MAX_TEXT:
            return None
        return self._final if self._final is not None else "".join(self._parts)


@dataclass(frozen=True)
class Capture:
    """What the proxy keeps of one completion until its answer is known."""

    suggestion: str
    user_id: int
    team: str | None
    adapter: str | None
    route: str
    prompt: str
    ts: float


class Store:
    """Writes captured suggestions (off the client's wait) and deletes expired ones."""

    def __init__(self, engine: Engine, retention_days: float) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self._purged_at = 0.0

    def save(self, cap: Capture, generated: str) -> bool:
        """Store one suggestion; an id already stored (a retry, or another user's) keeps the first row."""
        now = time.time()
        if now - self._purged_at > PURGE_EVERY_S:
            self._purged_at = now
            purge(self.engine, self.retention_days, now)
        row = StoredSuggestion(suggestion=cap.suggestion, ts=cap.ts, user_id=cap.user_id, team=cap.team,
                               adapter=cap.adapter, route=cap.route, prompt=cap.prompt, generated=generated)
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError:
            log.info("suggestion %s already stored; kept the first", cap.suggestion)
            return False
        return True


def purge(engine: Engine, retention_days: float, now: float | None = None) -> int:
    """Delete suggestions older than the retention; returns how many."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    with Session(engine) as s, s.begin():
        result = s.execute(delete(StoredSuggestion).where(StoredSuggestion.ts < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


class Outcome(BaseModel):
    """`POST /v1/suggestions/outcome`: what stood at the suggestion's place once the user was done."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_RE.pattern)
    final: str = Field(max_length=MAX_TEXT)
    shown: str | None = Field(default=None, max_length=MAX_TEXT)  # the text the editor showed (post-processed)


def record_outcome(engine: Engine, principal: Principal, outcome: Outcome, now: float | None = None) -> None:
    """Set the outcome of one of the user's own suggestions (NotFoundError / ForbiddenError otherwise)."""
    with Session(engine) as s, s.begin():
        row = s.scalar(select(StoredSuggestion).where(StoredSuggestion.suggestion == outcome.id))
        if row is None:
            raise NotFoundError(f"no stored suggestion with id {outcome.id!r} (expired, or its completion was not "
                                f"sent with `{HEADER}`)")
        if row.user_id != principal.user_id:
            raise ForbiddenError(f"suggestion {outcome.id!r} was made for another user")
        row.final = outcome.final
        row.shown = outcome.shown
        row.outcome_ts = time.time() if now is None else now


@dataclass(frozen=True)
class ExportCounts:
    stored: int  # suggestions of the team (since the date)
    with_outcome: int  # of which the language server reported an outcome
    pairs: int  # of which the final text is non-empty and differs from the suggestion

    def to_dict(self) -> dict[str, int]:
        return {"stored": self.stored, "with_outcome": self.with_outcome, "pairs": self.pairs}


def preference_pairs(engine: Engine, team: str, since: float | None = None) -> tuple[list[dict[str, Any]],
                                                                                      ExportCounts]:
    """DPO rows {"prompt", "chosen", "rejected", "id", "adapter"} of a team's suggestions, oldest first.

    chosen = the final text, rejected = the suggestion (the text shown when the outcome says, else the
    generation); only suggestions whose final text is non-empty and differs from it make a pair.
    """
    where = [StoredSuggestion.team == team]
    if since is not None:
        where.append(StoredSuggestion.ts >= since)
    rows: list[dict[str, Any]] = []
    with Session(engine) as s:
        stored = s.scalar(select(func.count()).select_from(StoredSuggestion).where(*where)) or 0
        with_outcome = s.scalar(select(func.count()).select_from(StoredSuggestion)
                                .where(*where, StoredSuggestion.final.is_not(None))) or 0
        for row in _rows(s, where):
            rejected = row.shown if row.shown is not None else row.generated
            if row.final and row.final != rejected:
                rows.append({"prompt": row.prompt, "chosen": row.final, "rejected": rejected, "id": row.suggestion,
                             "adapter": row.adapter})
    return rows, ExportCounts(int(stored), int(with_outcome), len(rows))


def _rows(s: Session, where: list[Any]) -> Iterator[StoredSuggestion]:
    query = select(StoredSuggestion).where(*where, StoredSuggestion.final.is_not(None)) \
        .order_by(StoredSuggestion.ts, StoredSuggestion.id)
    yield from s.scalars(query.execution_options(yield_per=500))
