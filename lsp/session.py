"""One completion session: backend, pipeline, tokenizer, cache and what the backend reported in /info.

The server owns one `Session` per configuration (a settings change builds a new one, keeping the cache
and the symbol index); `Session.complete` answers one cursor. Errors of the backend propagate as
`core.errors` exceptions: the server decides what the user sees.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.artifacts import read_info
from core.client import BackendInfo, BackendKind, ClientConfig, CompletionBackend, create_backend
from core.completion.cache import CompletionCache
from core.completion.pipeline import CompletionInput, CompletionPipeline
from core.completion.profile import PROFILE_KEY, CompletionProfile, profile_of_info
from core.completion.prompt import load_tokenizer
from core.completion.symbols import SymbolIndex
from core.errors import BackendTimeoutError, BackendUnavailableError, ConfigError, InhouseError
from lsp.config import LspConfig

log = logging.getLogger(__name__)

INFO_RETRY_S = 5.0  # while the backend is down, ask /info again at most this often


def load_profile(path: str | Path) -> CompletionProfile:
    """The profile of a model or adapter directory (its inhouse.json, derived for older ones), or of a JSON file
    holding an inhouse.json or a bare profile; a ConfigError naming the file otherwise."""
    p = Path(path).expanduser()
    if p.is_dir():
        profile = profile_of_info(read_info(p), where=str(p))
        if profile is None:
            raise ConfigError(f"`profile` {str(p)!r}: its inhouse.json names no FIM format, so it has no profile")
        return profile
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"`profile` {str(p)!r} is neither a model/adapter directory nor a readable JSON file: "
                          f"{exc}") from exc
    if isinstance(data, dict) and PROFILE_KEY in data:
        data = data[PROFILE_KEY]
    return CompletionProfile.from_dict(data, where=f"`profile` {str(p)!r}")


def build_pipeline(cfg: LspConfig, backend: CompletionBackend, *, tokenizer: Any | None,
                   index: SymbolIndex | None) -> CompletionPipeline:
    """The runner for these settings: the profile file or directory they name (else the backend's /info),
    their per-field overrides on top."""
    given = load_profile(cfg.profile) if cfg.profile else None
    return CompletionPipeline(backend, given, adapter_id=cfg.adapter, overrides=cfg.profile_overrides(),
                              enabled_languages=cfg.enabled_languages or None, tokenizer=tokenizer, index=index,
                              profile_source=f"profile {cfg.profile}", backend_url=cfg.backend_url)


@dataclass(frozen=True)
class Answer:
    text: str
    cached: bool
    reason: str
    multiline: bool = False
    timings: dict[str, float] | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    suggestion_id: str | None = None  # the id sent with the backend request (None: cached, or none was sent)
    lead: str = ""  # text the stored prompt leaves to the generation before the cursor (TGI's healed characters)


class Session:
    def __init__(self, cfg: LspConfig, *, cache: CompletionCache | None = None, index: SymbolIndex | None = None,
                 backend: CompletionBackend | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or create_backend(ClientConfig(url=cfg.gateway_url or cfg.backend_url,
                                                              kind=cfg.backend_kind, adapter_id=cfg.adapter,
                                                              timeout_s=cfg.timeout_s, api_key_file=cfg.api_key_file,
                                                              token=cfg.gateway_token if cfg.gateway_url else None))
        self.cache = cache or CompletionCache()
        self.index = index
        self.tokenizer = load_tokenizer(cfg.tokenizer)
        self.pipeline = build_pipeline(cfg, self.backend, tokenizer=self.tokenizer, index=index)
        self._info_failed_at: float | None = None
        self._info_timed_out = False  # whether the last /info failure was a timeout (slow) rather than refused
        self._no_info = False
        self._profile_logged = False

    @property
    def info(self) -> BackendInfo | None:
        return self.pipeline.info

    async def refresh_info(self) -> BackendInfo:
        """GET /info; afterwards the FIM format and limits follow the backend. Raises when it is down."""
        try:
            info = await self.pipeline.refresh_info()
        except BackendUnavailableError as exc:
            self._info_failed_at = time.monotonic()
            self._info_timed_out = isinstance(exc, BackendTimeoutError)
            raise
        self._info_failed_at = None
        if self.tokenizer is None and self.cfg.tokenizer is None and info.model_id:
            # The embedded server reports its model directory: on the same machine, its tokenizer is right there.
            candidate = Path(info.model_id)
            if (candidate / "tokenizer.json").is_file():
                self.tokenizer = load_tokenizer(candidate)
                self.pipeline.tokenizer = self.tokenizer
        log.info("backend %s: model %s, engine %s, max input tokens %d, adapters %s, tokenizer %s",
                 self.cfg.backend_url, info.model_id, info.engine or "?", info.max_input_tokens,
                 ",".join(info.adapters) or "-", "yes" if self.tokenizer is not None else "no (characters)")
        self.log_profile()
        return info

    def log_profile(self) -> None:
        """Log the profile in use and where it came from, once per session (overrides included); a missing
        profile is logged as the error it is."""
        try:
            resolved = self.pipeline.resolved()
        except ConfigError as exc:
            log.error("%s", exc)
            return
        if not self._profile_logged:
            self._profile_logged = True
            log.info("completion profile: %s (from %s)", resolved.profile.describe(), resolved.source)

    def profile_status(self) -> tuple[str | None, str | None]:
        """(the profile in use, described for the status bar; the problem when there is none)."""
        try:
            return self.pipeline.profile.describe(), None
        except ConfigError as exc:
            return None, str(exc)

    async def ensure_info(self) -> None:
        if self.pipeline.info is not None or self._no_info:
            return
        if self._info_failed_at is not None and time.monotonic() - self._info_failed_at < INFO_RETRY_S:
            if self._info_timed_out:
                raise BackendTimeoutError(f"backend {self.cfg.backend_url} slow to answer /info (retrying shortly)")
            raise BackendUnavailableError(f"backend {self.cfg.backend_url} unreachable (retrying shortly)")
        try:
            await self.refresh_info()
        except BackendUnavailableError:
            raise
        except InhouseError as exc:
            if self.pipeline.needs_info():
                raise
            # Some OpenAI-compatible servers have no usable model list: the profile from settings is enough.
            log.warning("backend %s gives no info (%s); completing with the profile from settings",
                        self.cfg.backend_url, exc)
            self._no_info = True
            self.log_profile()

    async def complete(self, doc: str, inp: CompletionInput, *, end: int | None = None,
                       on_request: Callable[[], None] | None = None, suggestion_id: str | None = None) -> Answer:
        """The suggestion for one cursor: from the cache when the user typed into the last one, else generated.

        `end` is the cursor's offset in the whole document (the prefix may be a window of it); `on_request`
        is called just before a request goes to the backend; `suggestion_id` goes with that request (a gateway
        that stores suggestions keeps it under this id).
        """
        t0 = time.perf_counter()
        decision = self.pipeline.decide(inp)
        if not decision.complete:
            return Answer("", False, decision.reason)
        hit = self.cache.lookup(doc, inp.prefix, inp.suffix, end)
        if hit is not None:
            return Answer(hit.text, True, "cache", decision.multiline,
                          {"total": (time.perf_counter() - t0) * 1000})
        await self.ensure_info()
        outcome = await self.pipeline.complete(inp, decision=decision, on_request=on_request,
                                               suggestion_id=suggestion_id)
        timings = dict(outcome.timings, total=(time.perf_counter() - t0) * 1000)
        self.cache.put(doc, inp.prefix, inp.suffix, outcome.text, end)
        # TGI gets the rewound prompt and generates the healed characters itself; OpenAI gets them in the prompt.
        heal = outcome.prompt.heal if outcome.prompt and self.cfg.backend_kind is BackendKind.TGI else ""
        return Answer(outcome.text, False, outcome.reason, decision.multiline, timings,
                      outcome.prompt.tokens if outcome.prompt else 0,
                      outcome.result.generated_tokens if outcome.result else 0,
                      suggestion_id if outcome.result is not None else None, heal)

    async def aclose(self) -> None:
        try:
            await self.backend.aclose()
        except Exception as exc:  # closing a dead connection must not break a settings change
            log.debug("closing backend: %s", exc)
