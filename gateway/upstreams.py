"""The model servers behind the gateway: health checks, which adapters each holds, and picking a replica.

Each upstream is polled on `/health` and `/info` every `health_interval_s`; `/info` says which base model
and adapters it holds. A request goes to the healthy replica holding its adapter with the fewest requests in
flight (round-robin among ties). A replica that refuses a connection is taken out at once and put back by the
next health check that passes. Used by `gateway.proxy`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from core.errors import BackendUnavailableError

log = logging.getLogger(__name__)


@dataclass
class Upstream:
    url: str
    healthy: bool = False
    model_id: str | None = None
    adapters: frozenset[str] = frozenset()
    in_flight: int = 0
    failures: int = 0
    last_error: str | None = None
    info: dict = field(default_factory=dict)


class UpstreamPool:
    def __init__(self, urls: tuple[str, ...], *, interval_s: float, client: httpx.AsyncClient) -> None:
        self.upstreams = [Upstream(u.rstrip("/")) for u in urls]
        self.interval_s = interval_s
        self._client = client
        self._turn = itertools.count()
        self._task: asyncio.Task | None = None
        self.on_change: Callable[[Upstream], None] | None = None  # told of every health check's result (metrics)
        self._asked_at = float("-inf")  # when `refresh_for` last asked every upstream

    async def start(self) -> None:
        await self.check_all()
        for up in self.upstreams:
            if not up.healthy:
                log.warning("upstream %s is out at start (%s); it is put back when it answers", up.url, up.last_error)
        self._task = asyncio.create_task(self._loop(), name="gateway-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check_all()

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(u) for u in self.upstreams))

    async def check(self, up: Upstream) -> None:
        try:
            health = await self._client.get(f"{up.url}/health", timeout=min(5.0, self.interval_s * 2))
            if health.status_code != 200:
                raise BackendUnavailableError(f"/health answered {health.status_code}")
            info = (await self._client.get(f"{up.url}/info", timeout=5.0)).json()
            up.info = info
            up.model_id = str(info.get("model_id") or "")
            up.adapters = frozenset(str(a) for a in info.get("adapters") or ())
            self._set(up, True, None)
        except (httpx.HTTPError, BackendUnavailableError, ValueError) as exc:
            self._set(up, False, f"{type(exc).__name__}: {exc}")

    def _set(self, up: Upstream, healthy: bool, error: str | None) -> None:
        if up.healthy != healthy:
            log.warning("upstream %s is %s%s", up.url, "back" if healthy else "out", f" ({error})" if error else "")
        up.healthy, up.last_error = healthy, error
        if not healthy:
            up.failures += 1
        if self.on_change is not None:
            self.on_change(up)

    async def refresh_for(self, adapter: str, min_interval_s: float = 1.0) -> None:
        """Ask every upstream again when none reported `adapter` at its last check (a version registered, copied
        into the adapters directory and promoted since), at most once per `min_interval_s`."""
        if adapter in self.adapters() or time.monotonic() - self._asked_at < min_interval_s:
            return
        self._asked_at = time.monotonic()
        await self.check_all()

    def mark_down(self, up: Upstream, error: str) -> None:
        """Take a replica out after a failed connection; the next passing health check puts it back."""
        self._set(up, False, error)

    def pick(self, adapter: str | None, exclude: tuple[Upstream, ...] = ()) -> Upstream:
        """The replica for a request; BackendUnavailableError (503) when none is healthy or holds `adapter`."""
        healthy = [u for u in self.upstreams if u.healthy and u not in exclude]
        if not healthy:
            raise BackendUnavailableError(
                f"no healthy upstream: all {len(self.upstreams)} model servers are down or unreachable "
                f"({'; '.join(f'{u.url}: {u.last_error}' for u in self.upstreams)})")
        holding = [u for u in healthy if adapter is None or adapter in u.adapters]
        if not holding:
            raise BackendUnavailableError(f"no healthy upstream serves adapter {adapter!r}")
        least = min(u.in_flight for u in holding)
        ties = [u for u in holding if u.in_flight == least]
        return ties[next(self._turn) % len(ties)]

    def adapters(self) -> set[str]:
        return {a for u in self.upstreams for a in u.adapters}

    def model_ids(self) -> set[str]:
        return {u.model_id for u in self.upstreams if u.model_id}

    def snapshot(self) -> list[dict]:
        return [{"url": u.url, "healthy": u.healthy, "model_id": u.model_id, "adapters": sorted(u.adapters),
                 "in_flight": u.in_flight, "last_error": u.last_error} for u in self.upstreams]
