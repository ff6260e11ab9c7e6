"""What the user sees besides suggestions: `$/inhouse/status` notifications and rate-limited messages.

The server calls `Status.set(...)`; a state is sent only when it changes. Backend failures become one
`window/showMessage` per `interval_s` (llm-ls's MAX_WARNING_REPEAT idea), the rest go to the log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from lsprotocol import types

log = logging.getLogger(__name__)

# A custom notification: no lsprotocol constant exists for it, so it is named once here.
STATUS_NOTIFICATION = "$/inhouse/status"


class State(str, Enum):
    READY = "ready"
    GENERATING = "generating"
    UNREACHABLE = "unreachable"
    DISABLED = "disabled"
    STARTING = "starting"


class Status:
    def __init__(self, notify: Callable[[str, Any], None], show: Callable[[types.ShowMessageParams], None],
                 interval_s: float = 180.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._notify = notify
        self._show = show
        self.interval_s = interval_s
        self._clock = clock
        self._last_message: float | None = None
        self.state = State.STARTING
        self.model: str | None = None
        self.adapter: str | None = None
        self.detail: str | None = None
        self.profile: str | None = None  # the completion profile in use, described (None: none resolved yet)
        self.messages_shown = 0

    def payload(self) -> dict[str, Any]:
        return {"state": self.state.value, "model": self.model, "adapter": self.adapter, "detail": self.detail,
                "profile": self.profile}

    def set(self, state: State, *, model: str | None = None, adapter: str | None = None,
            detail: str | None = None, profile: str | None = None, force: bool = False) -> None:
        """Change the state (and names); notify the client when anything it shows changed."""
        new = (state, model if model is not None else self.model, adapter if adapter is not None else self.adapter,
               detail, profile if profile is not None else self.profile)
        if not force and new == (self.state, self.model, self.adapter, self.detail, self.profile):
            return
        self.state, self.model, self.adapter, self.detail, self.profile = new
        try:
            self._notify(STATUS_NOTIFICATION, self.payload())
        except Exception as exc:  # the client went away: nothing to tell, nothing to crash
            log.debug("status notification failed: %s", exc)

    def warn(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> bool:
        """Show `message` unless one was shown less than `interval_s` ago; returns whether it was shown."""
        now = self._clock()
        if self._last_message is not None and now - self._last_message < self.interval_s:
            return False
        self._last_message = now
        self.messages_shown += 1
        try:
            self._show(types.ShowMessageParams(type=kind, message=f"inhouse: {message}"))
        except Exception as exc:
            log.debug("showMessage failed: %s", exc)
        return True
