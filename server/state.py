"""What one running server holds: config, model, engine, adapters, metrics, and the bound on requests in flight.

Built by `server.app.create_app`; the route modules (`server.app`, `server.openai`) reach it as `app.state.server`.
"""

from __future__ import annotations

import asyncio
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
from core.errors import GenerationError, ModelError, OverloadedError
from server.adapters import Adapter, AdapterDirectory, adapter_mtime, check_adapter
from server.config import ServeConfig
from server.engine import Engine, FinishEvent, Handle
from server.metrics import Metrics
from server.schema import GenerateParameters
from server.validation import Limits, Prepared, prepare


class ClientDisconnected(Exception):
    """The client went away before its result was ready; its generation was stopped."""


@dataclass
class ServerState:
    config: ServeConfig
    model_dir: Path
    model_id: str
    tokenizer: Any
    engine: Engine
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
        from server.loading import load_model

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ModelError(f"{str(model_dir)!r} is not a model directory (no config.json)")
        adapters = AdapterDirectory(cfg.adapters)
        model, tokenizer, choice = load_model(model_dir, cfg.device, cfg.dtype, cfg.threads, cfg.weights)
        metrics = Metrics()
        engine = Engine(model, tokenizer, max_batch_size=cfg.max_batch_size,
                        prefix_cache_entries=cfg.prefix_cache_entries, metrics=metrics, choice=choice,
                        draft_tokens=cfg.draft_tokens)
        max_pos = getattr(model.config, "max_position_embeddings", None) or cfg.max_total_tokens
        max_total = min(cfg.max_total_tokens, max_pos)
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
        cfg, lim, model, choice = self.config, self.limits, self.engine.model, self.engine.choice
        return {
            "model_id": self.model_id, "model_sha": None, "model_dtype": str(next(model.parameters()).dtype),
            "model_device_type": self.engine.device.type, "model_pipeline_tag": "text-generation",
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
        }

    async def prepare(self, inputs: str, params: GenerateParameters) -> Prepared:
        t0 = time.monotonic()
        self.metrics.request_count.inc()
        try:
            prepared = prepare(inputs, params, self.tokenizer, self.limits, self.adapters, self.profile)
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
