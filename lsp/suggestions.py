"""What the language server has in flight and on screen: one generation per document and cursor, and the
suggestion last shown per document (accepted, typed into, or dismissed: the telemetry events).

Used by lsp/server.py; the `inhouse.accepted` command the editor runs on acceptance is built here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lsprotocol import types

ACCEPTED_COMMAND = "inhouse.accepted"


@dataclass
class InFlight:
    key: tuple[int, int]  # (document version, cursor offset)
    task: asyncio.Task
    waiters: int = 1


@dataclass
class Shown:
    id: str
    uri: str
    language_id: str
    text: str
    offset: int
    settled: bool = False
    stored: bool = False  # its completion went with X-Inhouse-Suggestion-Id: the gateway keeps it (lsp.adoption)
    lead: str = ""  # what the stored prompt leaves before the cursor (the healed characters, TGI)
    before: str = ""  # the document's text just before the cursor when it was shown (to find the place again)
    after: str = ""  # and just after it


def still_on_screen(shown: Shown, prefix: str, offset: int) -> bool:
    """Whether a new request at `offset` is the user typing the shown suggestion (so it was not dismissed)."""
    typed_len = offset - shown.offset
    typed = prefix[len(prefix) - typed_len:] if 0 < typed_len <= len(prefix) else "" if typed_len == 0 else None
    return typed is not None and shown.text.startswith(typed) and len(typed) < len(shown.text)


def accepted_command(shown: Shown, text: str, pos: types.Position) -> types.Command:
    """The command the editor runs when the user accepts the suggestion (telemetry, cache)."""
    args = {"id": shown.id, "uri": shown.uri, "languageId": shown.language_id, "line": pos.line,
            "character": pos.character, "text": text, "suggestion": text, "full": True}
    return types.Command(title="inhouse: accepted", command=ACCEPTED_COMMAND, arguments=[args])
