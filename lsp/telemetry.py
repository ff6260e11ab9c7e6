"""Local usage events: suggestions shown, accepted and dismissed, one JSON object per line.

Off by default; when on, events go to a local JSONL file (nothing leaves the machine) and carry no code,
only lengths, language, timings and the suggestion id. Written by the server's event handlers.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVENTS = ("shown", "accepted", "dismissed")


def default_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "inhouse" / "telemetry.jsonl"


@dataclass
class Telemetry:
    enabled: bool = False
    path: Path | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {e: 0 for e in EVENTS}
        self.sink: Callable[[str, dict[str, Any]], None] | None = None  # lsp.adoption: events for the gateway

    def record(self, event: str, **fields: Any) -> None:
        """Append one event when enabled; a write failure is logged once per call, never raised."""
        if event not in EVENTS:
            raise ValueError(f"unknown telemetry event {event!r}")
        self.counts[event] += 1
        if self.sink is not None:
            self.sink(event, fields)
        if not self.enabled:
            return
        path = self.path or default_path()
        line = json.dumps({"ts": round(time.time(), 3), "event": event, **fields}, ensure_ascii=False)
        try:
            with self._lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        except OSError as exc:
            log.warning("telemetry: cannot write %s: %s", path, exc)
