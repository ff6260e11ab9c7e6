"""Adoption events for the gateway: batched off the completion path, with retention checks of accepted text.

The language server's telemetry calls `AdoptionReporter.record(event, fields)` (shown, accepted, dismissed);
that only appends to a bounded buffer. A background task sends batches to the gateway's `/v1/events` when the
gateway's policy (`GET /v1/policy`) asks for them; a batch the gateway cannot take (away, 5xx) is dropped
and counted, never retried into the editor's way. For each accepted suggestion it checks 30 s, 2 min, 5 min
and 10 min later how many of its characters are still in the document (edit distance against the text at
that place, as Copilot measures retention). Events carry lengths, language, adapter, repository name and
latency, never code.
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


def retained_chars(accepted: str, document: str, offset: int) -> int:
    """How many characters of `accepted`, inserted at `offset`, are still in `document` (by edit distance)."""
    from rapidfuzz.distance import Levenshtein

    if not accepted:
        return 0
    m = len(accepted)
    lo = max(0, offset - SLACK)
    window = document[lo:offset + m + SLACK]
    # The smallest edit distance between the accepted text and any stretch of the window: every start with the
    # accepted length first, then lengths within that distance around the best start.
    best, at = Levenshtein.distance(accepted, window), 0
    for start in range(0, max(1, len(window) - m + 1)):
        d = Levenshtein.distance(accepted, window[start:start + m], score_cutoff=best)
        if d < best:
            best, at = d, start
    for start in range(max(0, at - best), at + best + 1):
        for length in range(max(0, m - best), m + best + 1):
            best = min(best, Levenshtein.distance(accepted, window[start:start + length], score_cutoff=best))
    return max(0, m - best)


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
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task | None = None
        self._checks: set[asyncio.TimerHandle] = set()

    def configure(self, url: str | None, token: str | None, adapter: str | None) -> None:
        """Point at a gateway (or at none: events are not collected); the policy is asked again."""
        url = url.rstrip("/") if url else None
        if (url, token) != (self.url, self._token):
            self.policy = None
        self.url, self._token, self.adapter = url, token, adapter

    @property
    def active(self) -> bool:
        return bool(self.url and self._token) and (self.policy is None or bool(self.policy.get("adoption_events")))

    def record(self, event: str, fields: Mapping[str, Any]) -> None:
        """Queue one event (called on the completion path: never blocks, never raises)."""
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

    async def _flush_loop(self) -> None:
        while self._buffer:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        """Send what is buffered (in batches the policy allows); drop and count on failure."""
        if not self._buffer:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            if self.policy is None:
                resp = await self._client.get(f"{self.url}/v1/policy", headers=headers)
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
                    resp = await self._client.post(f"{self.url}/v1/events", json={"events": batch}, headers=headers)
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
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            await self._client.aclose()
