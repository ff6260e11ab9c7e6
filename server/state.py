"""What one running server holds: config, model, engine, adapters, metrics, and the bound on requests in flight.

Built by `server.app.create_app`; the route modules (`server.app`, `server.openai`) reach it as `app.state.server`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from core import __version__
from core.artifacts import read_info
from core.completion.profile import CompletionProfile, profile_of_info
from core.errors import GenerationError, ModelError, OverloadedError, ValidationError
from server.adapters import Adapter, AdapterDirectory, adapter_mtime, check_adapter
from server.config import ServeConfig
from server.generation import FinishEvent, Handle
from server.metrics import Metrics
from server.schema import GenerateParameters
from server.validation import Limits, Prepared, prepare

log = logging.getLogger(__name__)


class ClientDisconnected(Exception):
    """The client went away before its result was ready; its generation was stopped."""


@dataclass
class ServerState:
    config: ServeConfig
    model_dir: Path
    model_id: str
    tokenizer: Any
    engine: Any  # server.engine.Engine (torch) or server.llamacpp.LlamaCppEngine
    adapters: AdapterDirectory
    metrics: Metrics
    limits: Limits
    fim_format: str | None
    sha: str
    profile: CompletionProfile | None = None  # the base model's completion profile (inhouse.json)
    _in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._fitting: set[tuple[str, float]] = set()  # adapter versions `check_adapter` accepted

    @classmethod
    def load(cls, model_dir: str | Path, cfg: ServeConfig) -> ServerState:
        from core.artifacts import git_sha
        from server.loading import choose_engine, model_config

        model_dir = Path(model_dir)
        config = model_config(model_dir)
        adapters = AdapterDirectory(cfg.adapters)
        metrics = Metrics()
        kind, why = choose_engine(cfg.engine, cfg.device, model_dir)
        max_pos = config.get("max_position_embeddings") or cfg.max_total_tokens
        max_total = min(cfg.max_total_tokens, max_pos)
        engine: Any
        if kind == "llamacpp":
            engine = _llamacpp_engine(model_dir, cfg, metrics, max_total, why, adapters)
            tokenizer = engine.tokenizer
        else:
            from server.engine import Engine
            from server.loading import load_model

            model, tokenizer, choice = load_model(model_dir, cfg.device, cfg.dtype, cfg.threads, cfg.weights, why)
            engine = Engine(model, tokenizer, max_batch_size=cfg.max_batch_size,
                            prefix_cache_entries=cfg.prefix_cache_entries, metrics=metrics, choice=choice,
                            draft_tokens=cfg.draft_tokens)
        limits = Limits(max_input_tokens=min(cfg.max_input_tokens, max_total - 1), max_total_tokens=max_total,
                        max_stop_sequences=cfg.max_stop_sequences, default_max_new_tokens=cfg.default_max_new_tokens)
        info = read_info(model_dir)
        return cls(config=cfg, model_dir=model_dir, model_id=cfg.model_id or model_dir.resolve().name,
                   tokenizer=tokenizer, engine=engine, adapters=adapters, metrics=metrics, limits=limits,
                   fim_format=info.get("fim_format"), sha=git_sha(),
                   profile=profile_of_info(info, where=f"model {str(model_dir)!r}"))

    def info(self) -> dict[str, Any]:
        """TGI's /info fields, plus `fim_format`, `adapters`, `token_healing`, the completion profiles of the base
        (`profile`) and of each adapter (`adapter_profiles`) that clients complete with, and the engine's name,
        weights and threads (with the rule or flag that chose them)."""
        cfg, lim, choice = self.config, self.limits, self.engine.choice
        return {
            "model_id": self.model_id, "model_sha": None, "model_dtype": self.engine.dtype_name,
            "model_device_type": self.engine.device_type, "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": cfg.max_concurrent_requests, "max_best_of": lim.max_best_of,
            "max_stop_sequences": lim.max_stop_sequences, "max_input_tokens": lim.max_input_tokens,
            "max_input_length": lim.max_input_tokens, "max_total_tokens": lim.max_total_tokens,
            "waiting_served_ratio": 0.0, "max_batch_total_tokens": cfg.max_batch_size * lim.max_total_tokens,
            "max_waiting_tokens": 0, "max_batch_size": cfg.max_batch_size, "validation_workers": 1,
            "max_client_batch_size": 1, "router": "inhouse", "version": __version__, "sha": self.sha,
            "docker_label": None, "fim_format": self.fim_format, "adapters": self.adapters.ids(),
            "token_healing": True, "profile": self.profile.to_dict() if self.profile else None,
            "adapter_profiles": self.adapters.profiles(), "engine": choice.name, "engine_weights": choice.weights,
            "engine_threads": choice.threads, "engine_threads_from": choice.threads_from,
            "engine_from": choice.engine_from, "engine_build": choice.build or None,
        }

    async def prepare(self, inputs: str, params: GenerateParameters) -> Prepared:
        t0 = time.monotonic()
        self.metrics.request_count.inc()
        try:
            prepared = prepare(inputs, params, self.tokenizer, self.limits, self.adapters, self.profile)
            if prepared.request.decoder_input_details and not self.engine.prefill_details:
                raise ValidationError("`parameters.decoder_input_details` (the prompt's log-probabilities) is not "
                                      f"available on the {self.engine.choice.name} engine; serve with "
                                      "`--engine torch` for it")
            self._check_adapter(prepared.request.adapter_id, prepared.request.adapter_path)
        except Exception:
            self.metrics.failure("validation")
            raise
        if prepared.request.required_start:
            await asyncio.to_thread(self.engine.vocab)  # built once; off the event loop
        self.metrics.validation_duration.observe(time.monotonic() - t0)
        self.metrics.input_length.observe(len(prepared.request.input_ids))
        self.metrics.max_new_tokens.observe(prepared.request.max_new_tokens)
        return prepared

    def _check_adapter(self, adapter_id: str | None, path: Path | None) -> None:
        """A 422 for an adapter that does not fit the served model (checked once per version of its files)."""
        if adapter_id is None or path is None:
            return
        key = (str(path), adapter_mtime(path))
        if key in self._fitting:
            return
        check_adapter(Adapter(adapter_id, path, None), self.engine.module_shapes, self.model_id)
        self._fitting.add(key)

    @asynccontextmanager
    async def generation(self, prepared: Prepared):
        """Submit to the engine within the bound on requests in flight (429 beyond it); cancel on exit."""
        if not self.engine.alive:
            raise GenerationError("the generation engine is not running")
        with self._lock:
            if self._in_flight >= self.config.max_concurrent_requests:
                self.metrics.failure("overloaded")
                raise OverloadedError(f"Model is overloaded: {self._in_flight} requests in flight "
                                      f"(max_concurrent_requests {self.config.max_concurrent_requests})")
            self._in_flight += 1
        started = time.monotonic()
        handle = self.engine.submit(prepared.request)
        try:
            yield handle
        finally:
            handle.cancel()
            with self._lock:
                self._in_flight -= 1
            self.metrics.request_duration.observe(time.monotonic() - started)

    async def wait(self, handle: Handle, request: Request) -> FinishEvent:
        """The result, unless the client disconnects first (then the generation is stopped)."""
        task = asyncio.ensure_future(handle.result())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.2)
                if done:
                    return task.result()
                if await request.is_disconnected():
                    handle.cancel()
                    raise ClientDisconnected()
        finally:
            if not task.done():
                task.cancel()


def _llamacpp_engine(model_dir: Path, cfg: ServeConfig, metrics: Metrics, max_total: int, why: str,
                     adapters: AdapterDirectory) -> Any:
    """The llama.cpp engine on the model's GGUF (written on first use, `server.gguf_export`)."""
    from server.gguf_cache import model_gguf
    from server.llamacpp import LlamaCppEngine
    from server.loading import EngineChoice, auto_gguf_type, choose_threads, llamacpp_build, load_tokenizer

    if cfg.device not in ("auto", "cpu"):
        raise ModelError(f"the llama.cpp engine runs on the CPU here, got device {cfg.device!r}: use --engine torch")
    tokenizer = load_tokenizer(model_dir)
    threads, threads_from = choose_threads(cfg.threads)
    try:
        qtype = cfg.gguf_type if cfg.gguf_type != "auto" else auto_gguf_type(model_dir)
        gguf = model_gguf(model_dir, qtype, cache_dir=_gguf_cache())
    except ModelError as exc:
        raise ModelError(f"cannot load the model in {str(model_dir)!r} (corrupt or truncated file?): {exc}") from exc
    import xllamacpp

    from server.llamacpp_probe import repack_ok
    from server.native_build import cpu_features

    build, missing = llamacpp_build(xllamacpp.get_system_info(), cpu_features())
    if missing:
        log.warning("llama.cpp here is the portable build, without this CPU's %s: prompts run about half as fast "
                    "as a build for this CPU (`python -m server.native_build`, which `make install` runs)",
                    ", ".join(missing))
    repack = repack_ok(gguf, threads, _gguf_cache())  # a crash in a child process, not in the server
    if not repack:
        build += "; weights not repacked (the repacked kernels crashed a test process)"
    choice = EngineChoice(name="llama.cpp", weights=qtype, device="cpu", threads=threads,
                          threads_from=threads_from, engine_from=why, build=build)
    return LlamaCppEngine(model_dir, tokenizer, gguf, choice=choice, parallel=cfg.max_batch_size, repack=repack,
                          context=max(cfg.kv_tokens, max_total), max_workers=cfg.max_concurrent_requests,
                          metrics=metrics, lora_cache=_gguf_cache(),
                          reuse_prompts=cfg.prefix_cache_entries > 0,
                          keep_idle=cfg.idle_prompts if cfg.prefix_cache_entries > 0 else 0,
                          adapters=tuple((a, adapters.directory / a) for a in adapters.ids()
                                         if adapters.directory is not None))


def _gguf_cache() -> Path:
    """Where GGUF files go when the model's or adapter's own directory cannot be written."""
    return Path.home() / ".cache" / "inhouse" / "gguf"
