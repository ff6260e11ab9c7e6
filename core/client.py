"""The completion client: one `CompletionBackend` Protocol, a TGI and an OpenAI-compatible implementation.

Used by the language server, verif-env, the benches and the demo. `create_backend(cfg)` is the one factory,
keyed on `cfg.kind`. Token healing travels as `CompletionRequest.heal`: the TGI backend sends TGI's
`grammar` regex (core.healing.healing_grammar) and strips the healed text from the result; the OpenAI
backend, which has no constrained start, appends it to the prompt instead. Every transport failure is
mapped to the `core.errors` tree here, so callers only ever catch those. A request's `suggestion_id` goes as
the `X-Inhouse-Suggestion-Id` header (the gateway stores that completion when its policy says so).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import httpx

from core import config
from core.completion.profile import PROFILE_KEY, CompletionProfile
from core.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    GenerationError,
    OverloadedError,
    ValidationError,
)
from core.fim import cut_at_stop
from core.healing import healing_grammar

log = logging.getLogger(__name__)

SUGGESTION_HEADER = "X-Inhouse-Suggestion-Id"

class BackendKind(str, Enum):
    """How the backend is asked: TGI's API (TGI, `inhouse serve`, the gateway) or OpenAI's `/v1/completions`."""

    TGI = "tgi"
    OPENAI = "openai"

    @classmethod
    def parse(cls, value: object, field: str) -> BackendKind:
        """The kind `value` names; a ConfigError naming `field` otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"`{field}` must be one of {', '.join(k.value for k in cls)}, got {value!r}") from None


BACKEND_KINDS = tuple(k.value for k in BackendKind)


@config.section("client")
@dataclass(frozen=True)
class ClientConfig:
    url: str = "http://127.0.0.1:8080"  # base URL of the completion backend (TGI, vLLM or `inhouse serve`)
    kind: BackendKind = BackendKind.TGI  # "tgi" (TGI API) or "openai" (raw FIM prompt on /v1/completions)
    adapter_id: str | None = None  # LoRA adapter to complete with; unset: the base model
    timeout_s: float = 10.0  # seconds a completion may take before it is abandoned
    api_key_file: str | None = None  # file holding the backend's bearer token
    model: str | None = None  # the `model` field sent to an OpenAI-compatible backend
    token: str | None = field(default=None, repr=False)  # the bearer token itself (a gateway token); wins over the file

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", BackendKind.parse(self.kind, "kind"))
        config.require(self.timeout_s > 0, "timeout_s", "> 0", self.timeout_s)
        config.require(self.url.startswith(("http://", "https://")), "url", "an http(s) URL", self.url)

    def api_key(self) -> str | None:
        """The API key: `token`, else the one read from `api_key_file` (stripped), else None."""
        if self.token:
            return self.token
        if not self.api_key_file:
            return None
        try:
            return Path(self.api_key_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"`api_key_file` {self.api_key_file!r} cannot be read: {exc}") from exc


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    adapter_id: str | None = None  # LoRA adapter to complete with; unset: the base model
    heal: str = ""  # text the output must start with (token healing); stripped from the result
    seed: int | None = None
    suggestion_id: str | None = None  # sent as X-Inhouse-Suggestion-Id: the gateway may store this completion


@dataclass(frozen=True)
class CompletionResult:
    text: str
    generated_tokens: int
    elapsed_ms: float
    finish_reason: str


@dataclass(frozen=True)
class BackendInfo:
    model_id: str
    fim_format: str | None
    max_input_tokens: int
    max_total_tokens: int
    adapters: tuple[str, ...]
    token_healing: bool
    profile: CompletionProfile | None = None  # the base model's completion profile, where the server reports one
    adapter_profiles: dict[str, CompletionProfile] = field(default_factory=dict)  # adapter id -> its profile
    engine: str = ""  # the server's generation engine, where it says


class CompletionBackend(Protocol):
    async def info(self) -> BackendInfo: ...

    async def complete(self, req: CompletionRequest) -> CompletionResult: ...

    async def aclose(self) -> None: ...


def _finish_text(generated: str, heal: str, stop: tuple[str, ...]) -> str:
    """The part of a generation that follows the cursor, cut at the first stop sequence."""
    if heal:
        if not generated.startswith(heal):
            # The backend did not honour the constrained start: the text does not continue the word at the
            # cursor, so inserting it would be wrong. Nothing is better than garbage.
            log.debug("healed generation does not start with %r; dropped", heal)
            return ""
        generated = generated[len(heal):]
    return cut_at_stop(generated, stop)


def _http_modules() -> list[Any]:
    """httpx, and httpx2 where installed (huggingface_hub's AsyncInferenceClient is built on it): the same
    exception tree in two packages."""
    modules: list[Any] = [httpx]
    try:
        import httpx2

        modules.append(httpx2)
    except ImportError:
        pass
    return modules


_HTTP = _http_modules()
# Timeouts: after the connection was made the backend is there but slow; a connect timeout is not one of them
# (nothing answered the connection: as good as unreachable).
_TIMEOUTS: tuple[type[BaseException], ...] = tuple(m.TimeoutException for m in _HTTP)
_CONNECT_TIMEOUTS: tuple[type[BaseException], ...] = tuple(m.ConnectTimeout for m in _HTTP)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TransportError for m in _HTTP)


def _timeout_error(exc: BaseException, where: str, timeout_s: float) -> BackendUnavailableError:
    """A timeout of `where`: `BackendTimeoutError` (slow) unless the connection itself timed out."""
    cause = exc if isinstance(exc, _TIMEOUTS) else exc.__cause__
    if isinstance(cause, _CONNECT_TIMEOUTS):
        return BackendUnavailableError(f"cannot reach {where}: connection timed out after {timeout_s}s")
    return BackendTimeoutError(f"{where} timed out after {timeout_s}s")


def _map_status(status: int, message: str) -> Exception:
    if status == 429:
        return OverloadedError(f"backend overloaded: {message}")
    if status == 422:
        return ValidationError(f"backend rejected the request: {message}")
    if status in (502, 503, 504):
        return BackendUnavailableError(f"backend unavailable ({status}): {message}")
    return GenerationError(f"backend failed ({status}): {message}")


def _profiles_from_json(data: dict[str, Any], url: str) -> tuple[CompletionProfile | None,
                                                                 dict[str, CompletionProfile]]:
    """The base's and the adapters' profiles of an inhouse /info (a plain TGI has neither)."""
    base = data.get(PROFILE_KEY)
    profile = CompletionProfile.from_dict(base, where=f"{url}/info {PROFILE_KEY}") if base is not None else None
    adapters = data.get("adapter_profiles") or {}
    if not isinstance(adapters, dict):
        raise ConfigError(f"{url}/info `adapter_profiles` must be an object, got {adapters!r}")
    return profile, {str(k): CompletionProfile.from_dict(v, where=f"{url}/info adapter_profiles[{k!r}]")
                     for k, v in adapters.items()}


def _info_from_json(data: dict[str, Any], url: str) -> BackendInfo:
    profile, adapter_profiles = _profiles_from_json(data, url)
    try:
        return BackendInfo(
            model_id=str(data.get("model_id") or ""),
            fim_format=data.get("fim_format"),
            max_input_tokens=int(data.get("max_input_tokens") or data.get("max_input_length") or 0),
            max_total_tokens=int(data.get("max_total_tokens") or 0),
            adapters=tuple(str(a) for a in data.get("adapters") or ()),
            token_healing=bool(data.get("token_healing", False)),
            profile=profile,
            adapter_profiles=adapter_profiles,
            engine=str(data.get("engine") or ""),
        )
    except (TypeError, ValueError) as exc:
        raise GenerationError(f"{url}/info returned malformed data: {exc}") from exc


_REQUEST_HEADERS: ContextVar[dict[str, str] | None] = ContextVar("inhouse_request_headers", default=None)


class _TaskHeaders(dict):
    """The hf client's `headers`, plus the headers of the request the current task is sending (a ContextVar).

    AsyncInferenceClient takes headers once, for every call; this mapping lets one call add its own without a
    client per request. The client merges it with `{**hf_headers, **headers}`, which reads `keys()` and items
    of a dict subclass that overrides `__iter__`.
    """

    def _merged(self) -> dict[str, str]:
        return {**dict(super().items()), **(_REQUEST_HEADERS.get() or {})}

    def __iter__(self):
        return iter(self._merged())

    def keys(self):
        return self._merged().keys()

    def items(self):
        return self._merged().items()

    def __getitem__(self, key: str) -> str:
        return self._merged()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._merged()

    def __len__(self) -> int:
        return len(self._merged())

    def copy(self) -> dict[str, str]:
        return self._merged()


class TgiBackend:
    """A TGI-compatible server (real TGI or `inhouse serve`) through huggingface_hub's AsyncInferenceClient."""

    def __init__(self, cfg: ClientConfig) -> None:
        from huggingface_hub import AsyncInferenceClient

        self.cfg = cfg
        self.base = cfg.url.rstrip("/")
        self._api_key = cfg.api_key()
        self._client = AsyncInferenceClient(base_url=self.base, api_key=self._api_key, timeout=cfg.timeout_s)
        self._client.headers = _TaskHeaders(self._client.headers)
        self._http = httpx.AsyncClient(timeout=cfg.timeout_s, headers=self._headers())
        self._max_stop: int | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def info(self) -> BackendInfo:
        try:
            resp = await self._http.get(f"{self.base}/info")
        except httpx.TimeoutException as exc:
            raise _timeout_error(exc, f"{self.base}/info", self.cfg.timeout_s) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"cannot reach {self.base}/info: {exc}") from exc
        if resp.status_code != 200:
            raise _map_status(resp.status_code, resp.text[:200])
        data = resp.json()
        self._max_stop = int(data.get("max_stop_sequences") or 4)
        return _info_from_json(data, self.base)

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, TextGenerationError

        stops = list(req.stop)
        if self._max_stop is not None:
            stops = stops[: self._max_stop]  # TGI rejects more than max_stop_sequences; the rest are cut below
        adapter = req.adapter_id if req.adapter_id is not None else self.cfg.adapter_id
        start = time.perf_counter()
        token = _REQUEST_HEADERS.set({SUGGESTION_HEADER: req.suggestion_id} if req.suggestion_id else None)
        try:
            out: Any = await self._client.text_generation(  # type: ignore[misc]  # its overloads defeat mypy
                req.prompt,
                # The explicit /generate route: TGI and `inhouse serve` both have it (the bare base URL is
                # TGI's compat route, which other TGI-compatible servers may lack).
                model=f"{self.base}/generate",
                details=True,
                adapter_id=adapter,
                grammar=healing_grammar(req.heal) if req.heal else None,  # type: ignore[arg-type]  # TGI's JSON form
                stop=stops or None,
                max_new_tokens=req.max_new_tokens,
                do_sample=req.temperature > 0,
                temperature=req.temperature if req.temperature > 0 else None,
                seed=req.seed,
            )
        except InferenceTimeoutError as exc:
            raise _timeout_error(exc, self.base, self.cfg.timeout_s) from exc
        except TextGenerationError as exc:
            cause = exc.__cause__
            status = getattr(getattr(cause, "response", None), "status_code", 0) or 0
            raise _map_status(status, str(exc)) from exc
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", 0) or 0
            raise _map_status(status, str(exc).splitlines()[0] if str(exc) else "") from exc
        except OSError as exc:
            raise BackendUnavailableError(f"cannot reach {self.base}: {exc}") from exc
        except _TIMEOUTS as exc:  # httpx2's transport errors are not OSError
            raise _timeout_error(exc, self.base, self.cfg.timeout_s) from exc
        except _TRANSPORT_ERRORS as exc:
            raise BackendUnavailableError(f"cannot reach {self.base}: {exc}") from exc
        finally:
            _REQUEST_HEADERS.reset(token)
        elapsed = (time.perf_counter() - start) * 1000
        details = out.details
        return CompletionResult(
            text=_finish_text(out.generated_text, req.heal, req.stop),
            generated_tokens=int(details.generated_tokens) if details else 0,
            elapsed_ms=elapsed,
            finish_reason=str(details.finish_reason) if details else "unknown",
        )

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()


class OpenAIBackend:
    """An OpenAI-compatible server (vLLM, llama.cpp, Ollama...) with a raw FIM prompt on `/v1/completions`."""

    def __init__(self, cfg: ClientConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.base = cfg.url.rstrip("/").removesuffix("/v1")
        key = cfg.api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.AsyncClient(timeout=cfg.timeout_s, headers=headers, transport=transport)
        self._model: str | None = cfg.model

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = await self._http.request(method, f"{self.base}{path}", **kwargs)
        except httpx.TimeoutException as exc:
            raise _timeout_error(exc, f"{self.base}{path}", self.cfg.timeout_s) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"cannot reach {self.base}{path}: {exc}") from exc
        if resp.status_code != 200:
            raise _map_status(resp.status_code, resp.text[:200])
        try:
            return resp.json()
        except ValueError as exc:
            raise GenerationError(f"{self.base}{path} returned invalid JSON") from exc

    async def info(self) -> BackendInfo:
        data = await self._request("GET", "/v1/models")
        models = [m for m in data.get("data") or [] if isinstance(m, dict)]
        if not models:
            raise GenerationError(f"{self.base}/v1/models lists no model")
        base = next((m for m in models if not m.get("parent")), models[0])
        if self._model is None:
            self._model = str(base.get("id"))
        max_len = int(base.get("max_model_len") or 2048)
        adapters = tuple(str(m["id"]) for m in models if m.get("parent"))
        return BackendInfo(model_id=str(base.get("id")), fim_format=None, max_input_tokens=max_len - 1,
                           max_total_tokens=max_len, adapters=adapters, token_healing=False)

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        model = req.adapter_id or self.cfg.adapter_id or self._model
        if model is None:
            model = (await self.info()).model_id
        # No constrained start on this API: the healed text goes back at the end of the prompt, which makes
        # the model continue it exactly as if it had produced it.
        body: dict[str, Any] = {
            "model": model,
            "prompt": req.prompt + req.heal,
            "max_tokens": req.max_new_tokens,
            "temperature": req.temperature,
        }
        if req.stop:
            body["stop"] = list(req.stop)[:4]
        if req.seed is not None:
            body["seed"] = req.seed
        start = time.perf_counter()
        headers = {SUGGESTION_HEADER: req.suggestion_id} if req.suggestion_id else None
        data = await self._request("POST", "/v1/completions", json=body, headers=headers)
        elapsed = (time.perf_counter() - start) * 1000
        try:
            choice = data["choices"][0]
            text = str(choice.get("text") or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationError(f"{self.base}/v1/completions returned no choice") from exc
        usage = data.get("usage") or {}
        return CompletionResult(
            text=cut_at_stop(text, req.stop),
            generated_tokens=int(usage.get("completion_tokens") or 0),
            elapsed_ms=elapsed,
            finish_reason=str(choice.get("finish_reason") or "unknown"),
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def create_backend(cfg: ClientConfig) -> CompletionBackend:
    """The backend for `cfg.kind` ("tgi" or "openai")."""
    if cfg.kind is BackendKind.TGI:
        return TgiBackend(cfg)
    if cfg.kind is BackendKind.OPENAI:
        return OpenAIBackend(cfg)
    raise ConfigError(f"`kind` must be one of {', '.join(BACKEND_KINDS)}, got {cfg.kind!r}")
