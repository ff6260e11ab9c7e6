"""The completion runner: should_complete → build_prompt → request_completion → postprocess, under one profile.

`CompletionPipeline.complete` is the one place these stages are wired: the language server, the exam, verif-env,
the Python twin and the benches all run their cursors through it, so a prompt graded by the exam is byte for
byte the prompt the editor sends. The profile (core.completion.profile) says how to ask: given explicitly, or
the one the backend reports in `/info` for the adapter in use, with per-field overrides on top.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.client import BackendInfo, CompletionBackend, CompletionRequest, CompletionResult
from core.completion.context import select_context
from core.completion.postprocess import PostprocessContext, postprocess
from core.completion.profile import CompletionProfile, PromptOrder
from core.completion.prompt import CHARS_PER_TOKEN, BuiltPrompt, PromptBudget, Tokenizer, build_prompt
from core.completion.should_complete import Decision, decide
from core.completion.symbols import SymbolIndex
from core.errors import ConfigError
from core.fim import FimFormat, RepoContext, get_format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionInput:
    path: str
    prefix: str
    suffix: str
    language_id: str
    documents: Mapping[str, str] = field(default_factory=dict)  # other files (path -> text) for context
    repo_name: str = ""


@dataclass(frozen=True)
class Outcome:
    text: str                              # the suggestion ("" for none)
    decision: Decision
    reason: str                            # why there is (no) suggestion
    prompt: BuiltPrompt | None = None
    result: CompletionResult | None = None
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage, and "total"


@dataclass(frozen=True)
class ResolvedProfile:
    profile: CompletionProfile
    source: str                            # where it came from, for logs and the status bar


def resolve_profile(info: BackendInfo | None, adapter_id: str | None, *, given: CompletionProfile | None = None,
                    given_source: str = "settings", overrides: Mapping[str, Any] | None = None,
                    backend_url: str = "the backend") -> ResolvedProfile:
    """The profile to complete with: `given` (settings, an adapter directory), else the one `/info` reports for
    `adapter_id` (or the base), with `overrides` on top. Overrides that name a FIM format stand alone when nothing
    else gives a profile; otherwise no profile is a ConfigError that says what to set: never a silent default."""
    overrides = dict(overrides or {})
    profile, source = given, given_source
    if profile is None and info is not None:
        if adapter_id and adapter_id in info.adapter_profiles:
            profile, source = info.adapter_profiles[adapter_id], f"{backend_url} /info, adapter {adapter_id}"
        elif not adapter_id and info.profile is not None:
            profile, source = info.profile, f"{backend_url} /info, base model"
    if profile is None:
        if "fim_format" in overrides:
            return ResolvedProfile(CompletionProfile.from_dict(overrides, where="settings"), "settings")
        whose = f"adapter {adapter_id!r}" if adapter_id else "the base model"
        raise ConfigError(
            f"no completion profile for {whose}: {backend_url} reports none in /info (a plain TGI or vLLM server "
            f"does not); set `profile` to the adapter's or model's directory (its inhouse.json), or at least "
            f"`fimFormat` and `promptOrder`")
    if overrides:
        profile = profile.with_overrides(overrides, where="settings")
        source += " + settings " + ", ".join(sorted(overrides))
    return ResolvedProfile(profile, source)


class CompletionPipeline:
    """One backend, one profile (explicit, or the backend's for `adapter_id`), and the stages between."""

    def __init__(self, backend: CompletionBackend, profile: CompletionProfile | None = None, *,
                 adapter_id: str | None = None, overrides: Mapping[str, Any] | None = None,
                 enabled_languages: tuple[str, ...] | None = None, temperature: float = 0.0,
                 tokenizer: Tokenizer | None = None, index: SymbolIndex | None = None,
                 info: BackendInfo | None = None, profile_source: str = "given", backend_url: str = "the backend"
                 ) -> None:
        self.backend = backend
        self.given = profile
        self.given_source = profile_source
        self.adapter_id = adapter_id
        self.overrides = dict(overrides or {})
        self.enabled_languages = enabled_languages
        self.temperature = temperature
        self.tokenizer = tokenizer
        self.index = index
        self.backend_url = backend_url
        self._resolved: ResolvedProfile | None = None
        self.info = info

    @property
    def info(self) -> BackendInfo | None:
        return self._info

    @info.setter
    def info(self, value: BackendInfo | None) -> None:
        self._info = value
        self._resolved = None

    async def refresh_info(self) -> BackendInfo:
        """Ask the backend for /info (model, profiles, limits); raises the client's errors."""
        self.info = await self.backend.info()
        return self.info

    def resolved(self) -> ResolvedProfile:
        """The profile in use and where it came from (ConfigError when there is none)."""
        if self._resolved is None:
            self._resolved = resolve_profile(self.info, self.adapter_id, given=self.given,
                                             given_source=self.given_source, overrides=self.overrides,
                                             backend_url=self.backend_url)
        return self._resolved

    @property
    def profile(self) -> CompletionProfile:
        return self.resolved().profile

    def fim_format(self) -> FimFormat:
        return get_format(self.profile.fim_format)

    def needs_info(self) -> bool:
        """Whether the profile (or the prompt limit) still waits for the backend's /info."""
        return self.info is None and self.given is None and "fim_format" not in self.overrides

    def prompt_limit(self, max_new_tokens: int) -> int:
        """The prompt's token budget: the profile's, capped by what the backend accepts."""
        limit = self.profile.max_prompt_tokens
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
        return decide(inp.prefix, inp.suffix, inp.language_id, self.enabled_languages)

    def max_new_tokens(self, decision: Decision) -> int:
        p = self.profile
        return p.max_new_tokens_multiline if decision.multiline else p.max_new_tokens

    def prepare(self, inp: CompletionInput, decision: Decision, max_new_tokens: int | None = None
                ) -> tuple[BuiltPrompt, int, dict[str, float]]:
        """Stage 2: context and prompt for one cursor; returns the prompt, max_new_tokens and timings."""
        p = self.profile
        fmt = get_format(p.fim_format)
        max_new = max_new_tokens or self.max_new_tokens(decision)
        limit = self.prompt_limit(max_new)
        with_context = p.context and fmt.has_repo_layout
        t0 = time.perf_counter()
        context: tuple = ()
        if with_context and p.context_share > 0:
            others = {path: text for path, text in inp.documents.items() if path != inp.path}
            chars = int(limit * p.context_share * CHARS_PER_TOKEN)
            context = select_context(inp.path, inp.prefix, inp.suffix, others, inp.language_id, chars,
                                     index=self.index)
        t1 = time.perf_counter()
        budget = PromptBudget(max_prompt_tokens=limit, suffix_share=p.suffix_share,
                              context_share=p.context_share if with_context else 0.0)
        path, repo = (inp.path, inp.repo_name) if with_context else ("", "")
        built = build_prompt(inp.prefix, inp.suffix, fmt, budget=budget, tokenizer=self.tokenizer, context=context,
                             path=path, repo_name=repo, mode=p.order.fim_mode, heal=p.heal)
        if p.order is PromptOrder.L2R:  # the same prefix (cut and rewound) as plain text after the repo layout
            repo_ctx = RepoContext(repo, path, built.context) if with_context else None
            built = dataclasses.replace(built, prompt=fmt.render_l2r(built.prefix, repo_ctx)[:-len(fmt.eot)],
                                        suffix="")
        t2 = time.perf_counter()
        return built, max_new, {"context": (t1 - t0) * 1000, "prompt": (t2 - t1) * 1000}

    def request(self, prompt: BuiltPrompt, max_new_tokens: int) -> CompletionRequest:
        """Stage 3's request: the prompt, the profile's stops, healing when the prompt rewound the prefix."""
        return CompletionRequest(prompt=prompt.prompt, max_new_tokens=max_new_tokens, stop=self.profile.stops,
                                 temperature=self.temperature, adapter_id=self.adapter_id, heal=prompt.heal)

    def finish(self, raw: str, inp: CompletionInput, decision: Decision) -> str:
        """Stage 4: post-processing of the text after the cursor."""
        ctx = PostprocessContext(prefix=inp.prefix, suffix=inp.suffix, language_id=inp.language_id,
                                 multiline=decision.multiline, stop=self.profile.stops)
        return postprocess(raw, ctx)

    async def complete(self, inp: CompletionInput, *, decision: Decision | None = None,
                       max_new_tokens: int | None = None, on_request: Callable[[], None] | None = None,
                       suggestion_id: str | None = None) -> Outcome:
        """Run every stage for one cursor; errors of the backend propagate (the caller decides what to show).

        `decision` replaces stage 1 for callers that already made it (the language server, after its cache) or
        that complete a hole of their own (verif-env); `on_request` is called just before the request is sent;
        `suggestion_id` goes with the request (X-Inhouse-Suggestion-Id) for a gateway that stores suggestions.
        """
        start = time.perf_counter()
        decision = decision or self.decide(inp)
        if not decision.complete:
            return Outcome("", decision, decision.reason, timings={"total": (time.perf_counter() - start) * 1000})
        if self.needs_info():
            await self.refresh_info()
        prompt, max_new, timings = self.prepare(inp, decision, max_new_tokens)
        log.debug("prompt for %s:\n%s", inp.path, prompt.prompt)
        if on_request is not None:
            on_request()
        t0 = time.perf_counter()
        request = self.request(prompt, max_new)
        if suggestion_id is not None:
            request = dataclasses.replace(request, suggestion_id=suggestion_id)
        result = await self.backend.complete(request)
        t1 = time.perf_counter()
        text = self.finish(result.text, inp, decision)
        t2 = time.perf_counter()
        log.debug("raw completion %r -> %r", result.text, text)
        timings.update(backend=(t1 - t0) * 1000, postprocess=(t2 - t1) * 1000, total=(t2 - start) * 1000)
        reason = "ok" if text else "empty after post-processing"
        return Outcome(text, decision, reason, prompt, result, timings)
