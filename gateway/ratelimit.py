"""Per-user limits: requests per minute (a sliding window) and requests in flight. Over either: 429.

In memory, per gateway process (a second gateway replica keeps its own counts). Used by `gateway.proxy`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from core.errors import OverloadedError


class RateLimiter:
    def __init__(self, per_minute: int, concurrent: int) -> None:
        self.per_minute = per_minute
        self.concurrent = concurrent
        self._windows: dict[int, deque[float]] = {}
        self._in_flight: dict[int, int] = {}

    def acquire(self, user_id: int, user: str) -> Callable[[], None]:
        """Count one request of `user` until the returned release is called; OverloadedError over a limit."""
        now = time.monotonic()
        window = self._windows.setdefault(user_id, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= self.per_minute:
            raise OverloadedError(f"rate limit: user {user!r} sent {len(window)} requests in the last minute "
                                  f"(limit {self.per_minute})")
        if self._in_flight.get(user_id, 0) >= self.concurrent:
            raise OverloadedError(f"rate limit: user {user!r} has {self.concurrent} requests in flight "
                                  f"(limit {self.concurrent})")
        window.append(now)
        self._in_flight[user_id] = self._in_flight.get(user_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight[user_id] -= 1

        return release
