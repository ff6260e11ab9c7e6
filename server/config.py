"""The `[serve]` config section of `inhouse serve` and `server.app.create_app` (resolved once at the entry point)."""

from __future__ import annotations

from dataclasses import dataclass

from core import config

# The GGUF types the llama.cpp engine writes (server/gguf_export.py); `gguf_type = "auto"` picks one of them.
GGUF_TYPES = ("IQ4_NL", "Q4_0", "Q4_1", "Q8_0", "F16", "F32")


@config.section("serve")
@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # address to listen on (loopback by default)
    port: int = 8080  # TCP port
    adapters: str | None = None           # directory of peft adapters, one sub-directory per adapter id
    api_key_file: str | None = None       # a file holding the bearer token; no auth when unset
    model_id: str | None = None           # the name reported in /info (default: the model directory's name)
    device: str = "auto"                  # "auto" | "cpu" | "cuda" | "cuda:N"
    dtype: str = "auto"                   # "auto" (CPU: float32, GPU: bfloat16) | "float32" | "bfloat16" | "float16"
    max_concurrent_requests: int = 128    # queued + running; more answers 429
    max_batch_size: int = 8               # sequences decoded together
    max_input_tokens: int = 4096  # longest prompt accepted, in tokens
    max_total_tokens: int = 4608          # input + new tokens
    default_max_new_tokens: int = 64      # when a request gives no max_new_tokens
    max_stop_sequences: int = 16          # FIM stop lists are longer than TGI's default 4
    prefix_cache_entries: int = 4         # prompts kept per adapter for key/value reuse (0 disables)
    draft_tokens: int = 6                 # prompt-lookup draft checked per forward when one request decodes (0: off)
    log_level: str = "info"               # uvicorn's log level
    threads: int = 0                      # CPU threads of the engine (0: half the CPUs, at least 1)
    weights: str = "auto"                 # torch engine: "auto" (int8 on CPU, `dtype` on GPU) | "int8" | "float"
    engine: str = "auto"                  # "auto" (llama.cpp on a CPU, torch on a GPU) | "llamacpp" | "torch"
    gguf_type: str = "auto"               # llama.cpp: "auto" (server/loading.py) | IQ4_NL|Q4_0|Q4_1|Q8_0|F16|F32
    kv_tokens: int = 0                    # llama.cpp: key/value cache the slots share (at least max_total_tokens)
    idle_prompts: int = 1                 # llama.cpp: idle prompts kept per adapter for reuse (each slows all)

    def __post_init__(self) -> None:
        config.require(0 < self.port < 65536, "port", "in 1..65535", self.port)
        config.require(self.max_concurrent_requests > 0, "max_concurrent_requests", "> 0", self.max_concurrent_requests)
        config.require(self.max_batch_size > 0, "max_batch_size", "> 0", self.max_batch_size)
        config.require(self.max_input_tokens > 0, "max_input_tokens", "> 0", self.max_input_tokens)
        config.require(self.max_total_tokens > self.max_input_tokens, "max_total_tokens",
                       f"> max_input_tokens ({self.max_input_tokens})", self.max_total_tokens)
        config.require(self.default_max_new_tokens > 0, "default_max_new_tokens", "> 0", self.default_max_new_tokens)
        config.require(self.max_stop_sequences >= 0, "max_stop_sequences", ">= 0", self.max_stop_sequences)
        config.require(self.draft_tokens >= 0, "draft_tokens", ">= 0", self.draft_tokens)
        config.require(self.prefix_cache_entries >= 0, "prefix_cache_entries", ">= 0", self.prefix_cache_entries)
        config.require(self.threads >= 0, "threads", ">= 0", self.threads)
        config.require(self.weights in ("auto", "int8", "float"), "weights", "one of auto, int8, float", self.weights)
        config.require(self.engine in ("auto", "llamacpp", "torch"), "engine", "one of auto, llamacpp, torch",
                       self.engine)
        config.require(self.gguf_type in ("auto", *GGUF_TYPES), "gguf_type",
                       f"one of auto, {', '.join(GGUF_TYPES)}", self.gguf_type)
        config.require(self.kv_tokens >= 0, "kv_tokens", ">= 0", self.kv_tokens)
        config.require(self.idle_prompts >= 0, "idle_prompts", ">= 0", self.idle_prompts)
        config.require(self.dtype in ("auto", "float32", "bfloat16", "float16"), "dtype",
                       "one of auto, float32, bfloat16, float16", self.dtype)
