"""The `[gateway]` config section of `inhouse gateway` and `inhouse admin` (resolved once at the entry point)."""

from __future__ import annotations

from dataclasses import dataclass

from core import config

RETENTION_CHECKS_S: tuple[int, ...] = (30, 120, 300, 600)


@config.section("gateway")
@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"  # address to listen on (loopback by default)
    port: int = 8090  # TCP port
    database_url: str = "sqlite:///inhouse-gateway.db"  # SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://...
    upstreams: tuple[str, ...] = ("http://127.0.0.1:8080",)  # model servers; each reports its adapters in /info
    health_interval_s: float = 5.0  # seconds between health checks of each upstream
    timeout_s: float = 60.0  # seconds an upstream may take to answer (then 504)
    rate_limit_per_minute: int = 600  # requests per user per minute (then 429)
    max_concurrent_per_user: int = 64  # requests in flight per user (then 429)
    adoption_events: bool = False  # the company's policy: collect adoption events (reported to clients)
    max_events_per_batch: int = 500  # larger batches answer 413
    store_suggestions: bool = False  # the company's policy: keep prompts and suggestions for preference tuning
    suggestions_retention_days: float = 30.0  # stored suggestions older than this are deleted
    session_hours: float = 12.0  # how long an /admin login lasts
    auth_cache_s: float = 2.0  # a checked token is trusted this long (a revoke from another process waits this)
    log_level: str = "info"  # uvicorn's log level
    canary_share: float = 0.2  # share of a team's users a canary routes to the candidate (`canary start --share`)
    canary_minutes: float = 1440.0  # how long a canary runs before it is decided (`canary start --minutes`)
    canary_policy: str = "manual"  # auto: `canary decide` applies the verdict; manual: an admin promotes or rolls back
    canary_min_shown: int = 200  # shown suggestions each arm needs before a canary is decided (rule: docs/gateway.md)
    canary_retained_after_s: int = 300  # the retention check compared (the largest present when none at this one)
    canary_bootstrap: int = 2000  # bootstrap resamples (by user) for the retained-characters intervals

    def __post_init__(self) -> None:
        config.require(0 < self.port < 65536, "port", "in 1..65535", self.port)
        config.require(bool(self.database_url.strip()), "database_url", "a SQLAlchemy URL", self.database_url)
        config.require(len(self.upstreams) > 0, "upstreams", "at least one URL", self.upstreams)
        for url in self.upstreams:
            config.require(url.startswith(("http://", "https://")), "upstreams", "http(s) URLs", url)
        config.require(self.health_interval_s > 0, "health_interval_s", "> 0", self.health_interval_s)
        config.require(self.timeout_s > 0, "timeout_s", "> 0", self.timeout_s)
        config.require(self.rate_limit_per_minute > 0, "rate_limit_per_minute", "> 0", self.rate_limit_per_minute)
        config.require(self.max_concurrent_per_user > 0, "max_concurrent_per_user", "> 0",
                       self.max_concurrent_per_user)
        config.require(0 < self.max_events_per_batch <= 10000, "max_events_per_batch", "in 1..10000",
                       self.max_events_per_batch)
        config.require(self.suggestions_retention_days > 0, "suggestions_retention_days", "> 0",
                       self.suggestions_retention_days)
        config.require(self.auth_cache_s >= 0, "auth_cache_s", ">= 0", self.auth_cache_s)
        config.require(self.session_hours > 0, "session_hours", "> 0", self.session_hours)
        config.require(0 < self.canary_share < 1, "canary_share", "in (0, 1)", self.canary_share)
        config.require(self.canary_minutes > 0, "canary_minutes", "> 0", self.canary_minutes)
        config.require(self.canary_policy in ("auto", "manual"), "canary_policy", "auto or manual",
                       self.canary_policy)
        config.require(self.canary_min_shown >= 0, "canary_min_shown", ">= 0", self.canary_min_shown)
        config.require(self.canary_retained_after_s in RETENTION_CHECKS_S, "canary_retained_after_s",
                       f"one of {list(RETENTION_CHECKS_S)}", self.canary_retained_after_s)
        config.require(100 <= self.canary_bootstrap <= 100000, "canary_bootstrap", "in 100..100000",
                       self.canary_bootstrap)
