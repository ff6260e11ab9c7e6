"""The completion pipeline: should_complete → build_prompt → request_completion → postprocess.

The language server runs one `CompletionPipeline` per session; the verification generator and benches use
it directly. Each stage is a named function of its own module; this one wires them, measures each stage,
and knows what the backend reported in `/info` (FIM format, max input tokens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.client import BackendInfo, CompletionBackend, CompletionRequest, CompletionResult
from core.completion.context import select_context
from core.completion.postprocess import PostprocessContext, postprocess
from core.completion.prompt import CHARS_PER_TOKEN, BuiltPrompt, PromptBudget, Tokenizer, build_prompt
from core.completion.should_complete import Decision, decide
from core.completion.symbols import SymbolIndex
from core.errors import ConfigError
from core.fim import FimFormat, get_format

log = logging.getLogger(__name__)

DEFAULT_FIM_FORMAT = "starcoder"


@dataclass(frozen=True)
class PipelineSettings:
    fim_format: str | None = None          # None: the format the backend reports in /info
    max_prompt_tokens: int = 2048          # capped by the backend's max input tokens
    max_new_tokens: int = 48               # single-line mode
    max_new_tokens_multiline: int = 128
    suffix_share: float = 0.15
    context_share: float = 0.25
    heal: bool = True
    enabled_languages: tuple[str, ...] | None = None
    adapter_id: str | None = None
    temperature: float = 0.0
    mode: str = "psm"


@dataclass(frozen=True)
class CompletionInput:
    path: str
    prefix: str
    suffix: str
    language_id: str
    documents: Mapping[str, str] = field(default_factory=dict)
    repo_name: str = ""


@dataclass(frozen=True)
class Outcome:
    text: str                              # the suggestion ("" for none)
    decision: Decision
    reason: str                            # why there is (no) suggestion
    prompt: BuiltPrompt | None = None
    result: CompletionResult | None = None
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage, and "total"


async def request_completion(backend: CompletionBackend, prompt: BuiltPrompt, fmt: FimFormat, max_new_tokens: int,
                             *, adapter_id: str | None = None, temperature: float = 0.0) -> CompletionResult:
    """Stage 3: one request to the backend, asking for token healing when the prompt rewound the prefix."""
    req = CompletionRequest(prompt=prompt.prompt, max_new_tokens=max_new_tokens, stop=fmt.stop,
                            temperature=temperature, adapter_id=adapter_id, heal=prompt.heal)
    return await backend.complete(req)


class CompletionPipeline:
    def __init__(self, backend: CompletionBackend, settings: PipelineSettings = PipelineSettings(), *,
                 tokenizer: Tokenizer | None = None, index: SymbolIndex | None = None,
                 info: BackendInfo | None = None) -> None:
        self.backend = backend
        self.settings = settings
        self.tokenizer = tokenizer
        self.index = index
        self.info = info

    async def refresh_info(self) -> BackendInfo:
        """Ask the backend for /info (model, FIM format, limits); raises the client's errors."""
        self.info = await self.backend.info()
        return self.info

    def fim_format(self) -> FimFormat:
        name = self.settings.fim_format or (self.info.fim_format if self.info else None) or DEFAULT_FIM_FORMAT
        return get_format(name)

    def prompt_limit(self, max_new_tokens: int) -> int:
        """The prompt's token budget: the setting, capped by what the backend accepts."""
        limit = self.settings.max_prompt_tokens
        if self.info is not None:
            if self.info.max_input_tokens > 0:
                limit = min(limit, self.info.max_input_tokens)
            if self.info.max_total_tokens > 0:
                limit = min(limit, self.info.max_total_tokens - max_new_tokens)
        if limit < 16:
            raise ConfigError(f"`max_prompt_tokens` must leave room for a prompt, got {limit} after the backend's "
                              f"limits and max_new_tokens={max_new_tokens}")
        return limit

    def decide(self, inp: CompletionInput) -> Decision:
        return decide(inp.prefix, inp.suffix, inp.language_id, self.settings.enabled_languages)

    def prepare(self, inp: CompletionInput, decision: Decision) -> tuple[BuiltPrompt, int, dict[str, float]]:
        """Context and prompt for one cursor (stage 2); returns the prompt, max_new_tokens and timings."""
        s = self.settings
        fmt = self.fim_format()
        max_new = s.max_new_tokens_multiline if decision.multiline else s.max_new_tokens
        limit = self.prompt_limit(max_new)
        t0 = time.perf_counter()
        context = ()
        if fmt.has_repo_layout and s.context_share > 0:
            chars = int(limit * s.context_share * CHARS_PER_TOKEN)
            context = select_context(inp.path, inp.prefix, inp.suffix, inp.documents, inp.language_id, chars,
                                     index=self.index)
        t1 = time.perf_counter()
        budget = PromptBudget(max_prompt_tokens=limit, suffix_share=s.suffix_share, context_share=s.context_share)
        prompt = build_prompt(inp.prefix, inp.suffix, fmt, budget=budget, tokenizer=self.tokenizer,
                              context=context, path=inp.path, repo_name=inp.repo_name, mode=s.mode, heal=s.heal)
        t2 = time.perf_counter()
        return prompt, max_new, {"context": (t1 - t0) * 1000, "prompt": (t2 - t1) * 1000}

    def finish(self, raw: str, inp: CompletionInput, decision: Decision) -> str:
        """Stage 4: post-processing of the text after the cursor."""
        ctx = PostprocessContext(prefix=inp.prefix, suffix=inp.suffix, language_id=inp.language_id,
                                 multiline=decision.multiline, stop=self.fim_format().stop)
        return postprocess(raw, ctx)

    async def complete(self, inp: CompletionInput) -> Outcome:
        """Run every stage for one cursor; errors of the backend propagate (the caller decides what to show)."""
        start = time.perf_counter()
        decision = self.decide(inp)
        if not decision.complete:
            return Outcome("", decision, decision.reason, timings={"total": (time.perf_counter() - start) * 1000})
        if self.info is None and self.settings.fim_format is None:
            await self.refresh_info()
        prompt, max_new, timings = self.prepare(inp, decision)
        t0 = time.perf_counter()
        result = await request_completion(self.backend, prompt, self.fim_format(), max_new,
                                          adapter_id=self.settings.adapter_id, temperature=self.settings.temperature)
        t1 = time.perf_counter()
        text = self.finish(result.text, inp, decision)
        t2 = time.perf_counter()
        timings.update(backend=(t1 - t0) * 1000, postprocess=(t2 - t1) * 1000, total=(t2 - start) * 1000)
        reason = "ok" if text else "empty after post-processing"
        return Outcome(text, decision, reason, prompt, result, timings)
