"""Language server settings: the `[lsp]` config section, and the client's settings on top of it.

`inhouse lsp` resolves `LspConfig` once (defaults < file < env < flags); editors then send their own
settings in `initializationOptions` and `workspace/didChangeConfiguration` (section "inhouse") with the
camelCase names of `CLIENT_KEYS`, which `apply_client_settings` maps onto the same dataclass. A bad client
value is reported and ignored, never fatal.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core import config
from core.errors import ConfigError
from core.completion.profile import CompletionProfile

log = logging.getLogger(__name__)


@config.section("lsp")
@dataclass(frozen=True)
class LspConfig:
    backend_url: str = "http://127.0.0.1:8080"  # the completion backend (TGI, vLLM or `inhouse serve`)
    backend_kind: str = "tgi"              # "tgi" or "openai"
    api_key_file: str | None = None        # file holding the backend's bearer token (`inhouse serve --api-key-file`)
    adapter: str | None = None             # LoRA adapter id; None for the base model
    # The completion profile: by default the one the backend reports in /info for `adapter` (or the base).
    profile: str | None = None             # a model/adapter directory (its inhouse.json) or a profile JSON file:
                                           # needed behind a plain TGI or vLLM, whose /info has no profile
    # Each profile field can be overridden (unset: the profile's value); an override is logged once.
    fim_format: str | None = None          # FIM format name (core.fim)
    prompt_order: str | None = None        # "psm", "spm" or "l2r"
    healing: bool | None = None            # token healing
    repo_context: bool | None = None       # repository context (file path, other files)
    max_prompt_tokens: int | None = None   # prompt budget, capped by the backend's max_input_tokens
    max_tokens: int | None = None          # new tokens for a multi-line suggestion
    max_tokens_single_line: int | None = None  # new tokens for a single-line suggestion
    suffix_share: float | None = None      # share of the prompt budget for the suffix
    context_share: float | None = None     # ceiling on the share for other files' context
    stop_sequences: tuple[str, ...] = ()   # stop sequences beyond the FIM format's (empty: the profile's)
    bos: str | None = None                 # "model" (the tokenizer's special tokens) or "none"
    tokenizer: str | None = None           # tokenizer.json (or a model directory) for exact token budgets
    enabled_languages: tuple[str, ...] = ()  # empty: every language inhouse knows
    enabled: bool = True  # completions on or off (`inhouse.toggle`)
    timeout_s: float = 5.0  # seconds a completion may take
    debounce_ms: int = 25                  # wait this long for a newer keystroke before asking the backend
    telemetry: bool = False  # write shown/accepted/dismissed events to a local JSONL file
    telemetry_path: str | None = None      # default: ~/.local/state/inhouse/telemetry.jsonl
    message_interval_s: float = 180.0      # at most one window/showMessage per this many seconds
    index_workspace: bool = True  # build the tree-sitter symbol index of the workspace
    index_max_files: int = 2000  # most files the symbol index reads
    log_level: str = "info"  # debug, info, warning or error (stderr)
    gateway_url: str | None = None  # the company gateway: completions and adoption events go there instead
    gateway_token: str | None = field(default=None, repr=False)  # your gateway token (VS Code: "Sign in")

    def __post_init__(self) -> None:
        config.require(self.backend_kind in ("tgi", "openai"), "backend_kind", "one of tgi, openai",
                       self.backend_kind)
        config.require(self.backend_url.startswith(("http://", "https://")), "backend_url", "an http(s) URL",
                       self.backend_url)
        self.profile_overrides()  # each set override checked as the profile checks it, naming the setting
        config.require(self.timeout_s > 0, "timeout_s", "> 0", self.timeout_s)
        config.require(self.debounce_ms >= 0, "debounce_ms", ">= 0", self.debounce_ms)
        config.require(self.log_level.lower() in ("debug", "info", "warning", "error"), "log_level",
                       "one of debug, info, warning, error", self.log_level)
        if self.gateway_url is not None:
            config.require(self.gateway_url.startswith(("http://", "https://")), "gateway_url", "an http(s) URL",
                           self.gateway_url)

    def profile_overrides(self) -> dict[str, Any]:
        """The profile fields these settings override, as profile JSON (field -> value), checked."""
        out = {PROFILE_FIELDS[name]: getattr(self, name) for name in PROFILE_FIELDS
               if getattr(self, name) is not None and getattr(self, name) != ()}
        if "stop" in out:
            out["stop"] = list(out["stop"])
        if out:
            try:
                CompletionProfile.from_dict({"fim_format": out.get("fim_format", "starcoder"), **out},
                                            where="setting")
            except ConfigError as exc:
                message = str(exc)
                for name, profile_field in PROFILE_FIELDS.items():
                    message = message.replace(f"`{profile_field}`", f"`{name}`")
                raise ConfigError(message) from None
        return out


# LspConfig field -> the CompletionProfile field it overrides.
PROFILE_FIELDS: dict[str, str] = {
    "fim_format": "fim_format",
    "prompt_order": "order",
    "healing": "heal",
    "repo_context": "context",
    "max_prompt_tokens": "max_prompt_tokens",
    "max_tokens": "max_new_tokens_multiline",
    "max_tokens_single_line": "max_new_tokens",
    "suffix_share": "suffix_share",
    "context_share": "context_share",
    "stop_sequences": "stop",
    "bos": "bos",
}


# Client setting name (camelCase, as editors send them) -> LspConfig field.
CLIENT_KEYS: dict[str, str] = {
    "backendUrl": "backend_url",
    "backendKind": "backend_kind",
    "apiKeyFile": "api_key_file",
    "adapter": "adapter",
    "profile": "profile",
    "fimFormat": "fim_format",
    "promptOrder": "prompt_order",
    "healing": "healing",
    "repoContext": "repo_context",
    "stopSequences": "stop_sequences",
    "bos": "bos",
    "tokenizer": "tokenizer",
    "maxPromptTokens": "max_prompt_tokens",
    "maxTokens": "max_tokens",
    "maxTokensSingleLine": "max_tokens_single_line",
    "suffixShare": "suffix_share",
    "contextShare": "context_share",
    "enabledLanguages": "enabled_languages",
    "enable": "enabled",
    "enabled": "enabled",
    "timeoutMs": "timeout_s",
    "debounceMs": "debounce_ms",
    "telemetry": "telemetry",
    "telemetryPath": "telemetry_path",
    "indexWorkspace": "index_workspace",
    "gatewayUrl": "gateway_url",
    "gatewayToken": "gateway_token",
}

_NULLABLE = {"adapter", "fim_format", "tokenizer", "telemetry_path", "api_key_file", "profile", "prompt_order",
             "healing", "repo_context", "max_prompt_tokens", "max_tokens", "max_tokens_single_line", "suffix_share",
             "context_share", "bos", "gateway_url", "gateway_token"}


def _convert(field: str, key: str, value: Any) -> Any:
    if field in _NULLABLE and (value is None or value == ""):
        return None
    if field == "timeout_s":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number of milliseconds, got {value!r}")
        return float(value) / 1000.0
    if field == "enabled_languages":
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"`{key}` must be a list of language ids, got {value!r}")
        return tuple(v.strip() for v in value if v.strip())
    if field == "stop_sequences":
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"`{key}` must be a list of non-empty strings, got {value!r}")
        return tuple(value)
    if field in ("enabled", "telemetry", "index_workspace", "healing", "repo_context"):
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be true or false, got {value!r}")
        return value
    if field in ("max_prompt_tokens", "max_tokens", "max_tokens_single_line", "debounce_ms"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` must be an integer, got {value!r}")
        return value
    if field in ("suffix_share", "context_share"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"`{key}` must be a string, got {value!r}")
    if field in ("backend_url", "gateway_url"):
        return value.strip().rstrip("/")
    return value.strip()


def apply_client_settings(cfg: LspConfig, options: Mapping[str, Any] | None) -> tuple[LspConfig, list[str]]:
    """`cfg` with the editor's settings applied; every rejected setting comes back as a message.

    Accepts the settings themselves or wrapped in an "inhouse" section. Unknown keys are ignored.
    """
    if not options:
        return cfg, []
    if isinstance(options.get("inhouse"), Mapping):
        options = options["inhouse"]
    problems: list[str] = []
    for key, value in options.items():
        field = CLIENT_KEYS.get(key)
        if field is None:
            log.debug("ignoring unknown client setting %r", key)
            continue
        try:
            cfg = dataclasses.replace(cfg, **{field: _convert(field, key, value)})
        except ConfigError as exc:
            problems.append(str(exc))
        except (TypeError, ValueError) as exc:
            problems.append(f"`{key}`: {exc}")
    return cfg, problems
