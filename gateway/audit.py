"""The append-only audit log: request rows written off the request path, queries and CSV/JSON export.

`AuditWriter` takes one row per proxied request from the event loop and writes them in batches on its own
thread (one writer keeps SQLite's single write lock uncontended under 64 concurrent streams); `flush()` waits
until everything queued is committed. Admin changes are written by `gateway.accounts` in their own transaction.
Rows hold who, team, adapter, route, status, token counts, latency and upstream: never a prompt or a completion.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from gateway.models import AuditRow

log = logging.getLogger(__name__)

COLUMNS = ("id", "ts", "kind", "actor", "team", "adapter", "route", "status", "prompt_tokens", "generated_tokens",
           "latency_ms", "upstream", "detail")


class AuditWriter:
    def __init__(self, engine: Engine, batch: int = 256, linger_s: float = 0.02) -> None:
        self.engine = engine
        self.batch = batch
        self.linger_s = linger_s  # wait this long for more rows before a commit: fewer fsyncs under load
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gateway-audit", daemon=True)
        self._thread.start()
        self.written = 0
        self._expected = 0  # requests under way whose row is still to come (see `expect`)
        self._lock = threading.Lock()

    def expect(self) -> None:
        """A request started: `flush` also waits for its row (added with `add(..., expected=True)`)."""
        with self._lock:
            self._expected += 1

    def add(self, expected: bool = False, **row: Any) -> None:
        self._queue.put(row)
        if expected:
            with self._lock:
                self._expected -= 1

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until the rows of every request finished or under way are committed."""
        deadline = time.monotonic() + timeout_s
        while self._expected > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        done = threading.Event()
        self._queue.put({"__flush__": done})
        done.wait(timeout_s)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            items = [item]
            deadline = time.monotonic() + self.linger_s
            while len(items) < self.batch and item is not None and "__flush__" not in item:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                items.append(item)
            rows = [i for i in items if i is not None and "__flush__" not in i]
            stop = any(i is None for i in items)
            if rows:
                try:
                    with Session(self.engine) as s, s.begin():
                        s.execute(insert(AuditRow), rows)
                    self.written += len(rows)
                except Exception:  # the writer thread's edge: never die, say what was lost
                    log.exception("audit: %d rows could not be written", len(rows))
            for i in items:
                if i is not None and "__flush__" in i:
                    i["__flush__"].set()


def rows(engine: Engine, *, since: float | None = None, until: float | None = None, kind: str | None = None,
         limit: int | None = None) -> list[dict[str, Any]]:
    """Audit rows, newest first, as plain dicts."""
    q = select(AuditRow).order_by(AuditRow.id.desc())
    if since is not None:
        q = q.where(AuditRow.ts >= since)
    if until is not None:
        q = q.where(AuditRow.ts < until)
    if kind is not None:
        q = q.where(AuditRow.kind == kind)
    if limit is not None:
        q = q.limit(limit)
    with Session(engine) as s:
        return [{c: getattr(r, c) for c in COLUMNS} for r in s.scalars(q)]


def export(engine: Engine, fmt: str, **filters: Any) -> str:
    """The audit log as CSV (header + one line per row) or JSON (a list), oldest first, for a SIEM."""
    data = list(reversed(rows(engine, **filters)))
    if fmt == "json":
        return json.dumps(data, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
        return buf.getvalue()
    raise ValueError(f"`format` must be csv or json, got {fmt!r}")
