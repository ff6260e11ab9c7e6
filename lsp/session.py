"""One completion session: backend, pipeline, tokenizer, cache and what the backend reported in /info.

The server owns one `Session` per configuration (a settings change builds a new one, keeping the cache
and the symbol index); `Session.complete` answers one cursor. Errors of the backend propagate as
`core.errors` exceptions: the server decides what the user sees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.client import BackendInfo, ClientConfig, CompletionBackend, create_backend
from core.completion.cache import CompletionCache
from core.completion.pipeline import CompletionInput, CompletionPipeline, PipelineSettings, request_completion
from core.completion.symbols import SymbolIndex
from core.errors import BackendTimeoutError, BackendUnavailableError, InhouseError
from lsp.config import LspConfig

log = logging.getLogger(__name__)

INFO_RETRY_S = 5.0  # while the backend is down, ask /info again at most this often


def load_tokenizer(path: str | Path | None) -> Any | None:
    """A `tokenizers.Tokenizer` from a tokenizer.json or a model directory; None (with a warning) if unusable."""
    if not path:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        log.warning("tokenizer %s not found; budgeting prompts in characters", p)
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(p))
    except Exception as exc:  # a corrupt file must not stop completions: fall back to characters
        log.warning("tokenizer %s cannot be loaded (%s); budgeting prompts in characters", p, exc)
        return None


def pipeline_settings(cfg: LspConfig) -> PipelineSettings:
    return PipelineSettings(
        fim_format=cfg.fim_format,
        max_prompt_tokens=cfg.max_prompt_tokens,
        max_new_tokens=min(cfg.max_tokens_single_line, cfg.max_tokens),
        max_new_tokens_multiline=cfg.max_tokens,
        suffix_share=cfg.suffix_share,
        context_share=cfg.context_share,
        enabled_languages=cfg.enabled_languages or None,
        adapter_id=cfg.adapter,
    )


@dataclass(frozen=True)
class Answer:
    text: str
    cached: bool
    reason: str
    multiline: bool = False
    timings: dict[str, float] | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0


class Session:
    def __init__(self, cfg: LspConfig, *, cache: CompletionCache | None = None, index: SymbolIndex | None = None,
                 backend: CompletionBackend | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or create_backend(ClientConfig(url=cfg.backend_url, kind=cfg.backend_kind,
                                                              adapter_id=cfg.adapter, timeout_s=cfg.timeout_s,
                                                              api_key_file=cfg.api_key_file))
        self.cache = cache or CompletionCache()
        self.index = index
        self.tokenizer = load_tokenizer(cfg.tokenizer)
        self.pipeline = CompletionPipeline(self.backend, pipeline_settings(cfg), tokenizer=self.tokenizer,
                                           index=index)
        self._info_failed_at: float | None = None
        self._info_timed_out = False  # whether the last /info failure was a timeout (slow) rather than refused
        self._no_info = False

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
        log.info("backend %s: model %s, FIM format %s, max input tokens %d, adapters %s, tokenizer %s",
                 self.cfg.backend_url, info.model_id, self.pipeline.fim_format().name, info.max_input_tokens,
                 ",".join(info.adapters) or "-", "yes" if self.tokenizer is not None else "no (characters)")
        return info

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
            if not self.cfg.fim_format:
                raise
            # Some OpenAI-compatible servers have no usable model list: the configured format is enough.
            log.warning("backend %s gives no info (%s); completing with FIM format %s", self.cfg.backend_url, exc,
                        self.cfg.fim_format)
            self._no_info = True

    async def complete(self, doc: str, inp: CompletionInput, *, end: int | None = None,
                       on_request: Callable[[], None] | None = None) -> Answer:
        """The suggestion for one cursor: from the cache when the user typed into the last one, else generated.

        `end` is the cursor's offset in the whole document (the prefix may be a window of it); `on_request`
        is called just before a request goes to the backend.
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
        prompt, max_new, timings = self.pipeline.prepare(inp, decision)
        log.debug("prompt for %s:\n%s", inp.path, prompt.prompt)
        if on_request is not None:
            on_request()
        t1 = time.perf_counter()
        result = await request_completion(self.backend, prompt, self.pipeline.fim_format(), max_new,
                                          adapter_id=self.cfg.adapter)
        t2 = time.perf_counter()
        text = self.pipeline.finish(result.text, inp, decision)
        t3 = time.perf_counter()
        log.debug("raw completion %r -> %r", result.text, text)
        timings.update(backend=(t2 - t1) * 1000, postprocess=(t3 - t2) * 1000, total=(t3 - t0) * 1000)
        self.cache.put(doc, inp.prefix, inp.suffix, text, end)
        return Answer(text, False, "ok" if text else "empty after post-processing", decision.multiline, timings,
                      prompt.tokens, result.generated_tokens)

    async def aclose(self) -> None:
        try:
            await self.backend.aclose()
        except Exception as exc:  # closing a dead connection must not break a settings change
            log.debug("closing backend: %s", exc)
