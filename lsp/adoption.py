"""Adoption events for the gateway: batched off the completion path, with retention checks of accepted text.

The language server's telemetry calls `AdoptionReporter.record(event, fields)` (shown, accepted, dismissed);
that only appends to a bounded buffer. A background task sends batches to the gateway's `/v1/events` when the
gateway's policy (`GET /v1/policy`) asks for them; a batch the gateway cannot take (away, 5xx) is dropped
and counted, never retried into the editor's way. For each accepted suggestion it checks 30 s, 2 min, 5 min
and 10 min later how many of its characters are still in the document (edit distance against the text at
that place, as Copilot measures retention). Events carry lengths, language, adapter, repository name and
latency, never code.

When the policy also says `store_suggestions`, completions go with `X-Inhouse-Suggestion-Id` (the id the events
use) and the gateway keeps them; this reporter then posts each one's outcome to `/v1/suggestions/outcome`:
the text shown and the text that stood at its place once the user was done (`final_text` says exactly what).
That is the one message that carries code, and only under that policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx

log = logging.getLogger(__name__)

CHECKS_S = (30, 120, 300, 600)
SLACK = 256  # characters around the accepted text searched for it (edits above it shift it)
ANCHOR = 64  # characters before and after the cursor kept to find a dismissed suggestion's place again


def repository_name(workspace: Any, uri: str) -> str | None:
    """The name of the workspace folder holding `uri` (what the dashboard filters by), in the gateway's alphabet."""
    import re
    from pathlib import PurePosixPath

    folders = getattr(workspace, "folders", None) or {}
    for folder in folders.values():
        if uri.startswith(folder.uri.rstrip("/") + "/"):
            name = folder.name or PurePosixPath(folder.uri).name
            return re.sub(r"[^A-Za-z0-9._/@-]", "-", name)[:200].lstrip("/") or None
    return None


def best_span(accepted: str, document: str, offset: int) -> tuple[int, int, int]:
    """(edit distance, start, end): the stretch of `document` near `offset` closest to `accepted` by edit
    distance (searched within SLACK characters around it, so edits above it that shift it are followed)."""
    from rapidfuzz.distance import Levenshtein

    m = len(accepted)
    lo = max(0, offset - SLACK)
    window = document[lo:offset + m + SLACK]
    # The smallest edit distance between the accepted text and any stretch of the window: every start with the
    # accepted length first, then lengths within that distance around the best start.
    best, at, size = Levenshtein.distance(accepted, window), 0, len(window)
    for start in range(0, max(1, len(window) - m + 1)):
        d = Levenshtein.distance(accepted, window[start:start + m], score_cutoff=best)
        if d < best:
            best, at, size = d, start, m
    first = at
    for start in range(max(0, first - best), first + best + 1):
        for length in range(max(0, m - best), m + best + 1):
            d = Levenshtein.distance(accepted, window[start:start + length], score_cutoff=best)
            if d < best:
                best, at, size = d, start, length
    return best, lo + at, lo + min(at + size, len(window))


def retained_chars(accepted: str, document: str, offset: int) -> int:
    """How many characters of `accepted`, inserted at `offset`, are still in `document` (by edit distance)."""
    if not accepted:
        return 0
    return max(0, len(accepted) - best_span(accepted, document, offset)[0])


def final_text(shown: Any, document: str, accepted: bool) -> str | None:
    """The text that stood at a suggestion's place once the user was done (the outcome's `final`), or None when
    its place cannot be found again. Line ends are `\n`, like the suggestion's.

    Accepted (checked with the last retention check, 10 min after acceptance): the stretch of the document the
    retention check matches, searched for the whole suggestion shown (for a full acceptance that is the accepted
    text; for a partial one the rest is matched too).
    Dismissed (checked once, 30 s after the dismissal): what was typed at the cursor where it was shown, at most
    as many characters as the suggestion had: the text from the cursor up to where the text that followed the
    cursor then begins again (or the suggestion's length, when it is not found within that many characters).
    The cursor is found again by the 64 characters that preceded it (the document may have moved); when they are
    gone, there is no outcome. Nothing typed: the empty string (no preference pair comes of it).
    """
    if accepted:
        _, start, end = best_span(shown.text, document, shown.offset)
        return document[start:end].replace("\r\n", "\n")
    at = shown.offset
    if shown.before and not document[:at].endswith(shown.before):
        lo = max(0, at - SLACK - len(shown.before))
        found = document.find(shown.before, lo, at + SLACK + len(shown.before))
        if found < 0:
            return None
        at = found + len(shown.before)
    window = document[at:at + len(shown.text)]
    if shown.after:
        stop = document.find(shown.after[:16], at, at + len(shown.text) + 16)
        if stop >= 0:
            window = window[:stop - at]
    return window.replace("\r\n", "\n")


class AdoptionReporter:
    def __init__(self, shown: Mapping[str, Any], document_text: Callable[[str], str | None],
                 repo: Callable[[str], str | None], *, flush_s: float = 5.0, max_buffer: int = 2000,
                 time_scale: float = 1.0) -> None:
        self._shown = shown  # uri -> the server's Shown (id, uri, text, offset): what an accepted event refers to
        self._document_text = document_text
        self._repo = repo
        self.flush_s = flush_s
        self.time_scale = time_scale  # tests shrink the retention delays; the events still say 30/120/300/600
        self._buffer: deque[dict[str, Any]] = deque()
        self._max_buffer = max_buffer
        self.url: str | None = None
        self._token: str | None = None
        self.adapter: str | None = None
        self.policy: dict[str, Any] | None = None
        self.counts = {"sent": 0, "dropped": 0, "not_collected": 0}
        self.outcome_counts = {"sent": 0, "dropped": 0}  # suggestion outcomes (store_suggestions)
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task | None = None
        self._checks: set[asyncio.TimerHandle] = set()
        self._outcomes: set[asyncio.Task] = set()

    def configure(self, url: str | None, token: str | None, adapter: str | None) -> None:
        """Point at a gateway (or at none: events are not collected); the policy is asked again."""
        url = url.rstrip("/") if url else None
        if (url, token) != (self.url, self._token):
            self.policy = None
        self.url, self._token, self.adapter = url, token, adapter

    @property
    def active(self) -> bool:
        return bool(self.url and self._token) and (self.policy is None or bool(self.policy.get("adoption_events")))

    @property
    def stores_suggestions(self) -> bool:
        """Whether the gateway's policy (already fetched) stores suggestions: then completions carry an id."""
        return bool(self.url and self._token and self.policy and self.policy.get("store_suggestions"))

    async def refresh_policy(self) -> None:
        """Ask the gateway for its policy (on connecting); a failure leaves it unknown (nothing is stored)."""
        if not (self.url and self._token):
            return
        try:
            resp = await self._http().get(f"{self.url}/v1/policy", headers=self._auth())
            resp.raise_for_status()
            self.policy = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.info("gateway policy unknown (%s): suggestions are not stored", type(exc).__name__)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        return self._client

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def record(self, event: str, fields: Mapping[str, Any]) -> None:
        """Queue one event (called on the completion path: never blocks, never raises)."""
        if event in ("accepted", "dismissed") and self.stores_suggestions:
            self._schedule_outcome(event, fields)
        if not self.active:
            self.counts["not_collected"] += 1
            return
        ev: dict[str, Any] = {"kind": event, "id": str(fields.get("id") or "unknown")[:64], "ts": round(time.time(), 3),
                              "language": fields.get("language"), "adapter": self.adapter,
                              "chars": int(fields.get("chars") or 0)}
        shown = next((s for s in self._shown.values() if s.id == fields.get("id")), None)
        if shown is not None:
            ev["repo"] = self._repo(shown.uri)
        if event == "shown" and fields.get("latency_ms") is not None:
            ev["latency_ms"] = float(fields["latency_ms"])
        if event == "accepted":
            ev["partial"] = not fields.get("full", True)
            if shown is not None:
                self._schedule_checks(ev, shown.uri, shown.text[:ev["chars"]], shown.offset)
        self._push(ev)

    def _push(self, ev: dict[str, Any]) -> None:
        if len(self._buffer) >= self._max_buffer:
            self.counts["dropped"] += 1
            return
        self._buffer.append({k: v for k, v in ev.items() if v is not None})
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush_loop())

    def _schedule_checks(self, accepted: dict[str, Any], uri: str, text: str, offset: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for after in CHECKS_S:
            def check(after: int = after) -> None:
                doc = self._document_text(uri)
                kept = retained_chars(text, doc, offset) if doc is not None else 0
                self._push({**accepted, "kind": "retained", "after_s": after, "chars": kept, "partial": None,
                            "ts": round(time.time(), 3)})

            handle = loop.call_later(after * self.time_scale, check)
            self._checks.add(handle)

    def _schedule_outcome(self, event: str, fields: Mapping[str, Any]) -> None:
        """The outcome of a stored suggestion: with the last retention check when accepted, 30 s after a dismissal."""
        shown = next((s for s in self._shown.values() if s.id == fields.get("id")), None)
        if shown is None or not shown.stored:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        accepted = event == "accepted"

        def check() -> None:
            doc = self._document_text(shown.uri)
            final = final_text(shown, doc, accepted) if doc is not None else None
            if final is None:
                self.outcome_counts["dropped"] += 1
                return
            body = {"id": shown.id, "final": shown.lead + final, "shown": shown.lead + shown.text}
            task = loop.create_task(self._post_outcome(body))
            self._outcomes.add(task)
            task.add_done_callback(self._outcomes.discard)

        handle = loop.call_later((CHECKS_S[-1] if accepted else CHECKS_S[0]) * self.time_scale, check)
        self._checks.add(handle)

    async def _post_outcome(self, body: dict[str, Any]) -> None:
        try:
            resp = await self._http().post(f"{self.url}/v1/suggestions/outcome", json=body, headers=self._auth())
        except httpx.HTTPError as exc:
            self.outcome_counts["dropped"] += 1
            log.info("suggestion outcome dropped: the gateway at %s is away (%s)", self.url, type(exc).__name__)
            return
        if resp.status_code != 200:
            self.outcome_counts["dropped"] += 1
            log.warning("suggestion outcome: the gateway answered %d: %s", resp.status_code, resp.text[:200])
            return
        self.outcome_counts["sent"] += 1

    async def _flush_loop(self) -> None:
        while self._buffer:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        """Send what is buffered (in batches the policy allows); drop and count on failure."""
        if not self._buffer:
            return
        client = self._http()
        headers = self._auth()
        try:
            if self.policy is None:
                resp = await client.get(f"{self.url}/v1/policy", headers=headers)
                resp.raise_for_status()
                self.policy = resp.json()
            if not self.policy.get("adoption_events"):
                self.counts["not_collected"] += len(self._buffer)
                self._buffer.clear()
                return
            size = int(self.policy.get("max_events_per_batch") or 100)
            while self._buffer:
                batch = [self._buffer.popleft() for _ in range(min(size, len(self._buffer)))]
                try:
                    resp = await client.post(f"{self.url}/v1/events", json={"events": batch}, headers=headers)
                except httpx.HTTPError:
                    self.counts["dropped"] += len(batch)
                    raise
                if resp.status_code != 200:
                    self.counts["dropped"] += len(batch)
                    log.warning("adoption events: the gateway answered %d: %s", resp.status_code, resp.text[:200])
                    continue
                self.counts["sent"] += len(batch)
        except (httpx.HTTPError, ValueError) as exc:
            self.counts["dropped"] += len(self._buffer)
            self._buffer.clear()
            log.info("adoption events dropped: the gateway at %s is away (%s)", self.url, type(exc).__name__)

    async def aclose(self) -> None:
        for handle in self._checks:
            handle.cancel()
        for task in list(self._outcomes):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            await self._client.aclose()
