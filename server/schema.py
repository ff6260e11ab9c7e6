"""The HTTP schema, with TGI's wire names verbatim (`inputs`, `parameters`, `generated_text`, `details`...).

Request models parse and type-check; bounds that depend on the running server (token limits, stop count)
are checked in `server.validation` so the 422 message can name the bound. Used by `server.app`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Grammar(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["regex", "json", "json_object"]
    value: Any = None


class GenerateParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adapter_id: str | None = None
    best_of: int | None = None
    decoder_input_details: bool = False
    details: bool = False
    do_sample: bool = False
    frequency_penalty: float | None = None
    grammar: Grammar | None = None
    max_new_tokens: int | None = None
    repetition_penalty: float | None = None
    return_full_text: bool | None = None
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    temperature: float | None = None
    top_k: int | None = None
    top_n_tokens: int | None = None
    top_p: float | None = None
    truncate: int | None = None
    typical_p: float | None = None
    watermark: bool = False
    # Extension (advertised in /info as "token_healing"): rewind the prompt's last token server-side,
    # make the output re-type it, and return only what follows the cursor.
    token_healing: bool = False


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)


class CompatGenerateRequest(GenerateRequest):
    stream: bool = False


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)


class Token(BaseModel):
    id: int
    text: str
    logprob: float | None = None
    special: bool = False


class PrefillToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None


class Details(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    prefill: list[PrefillToken] = Field(default_factory=list)
    tokens: list[Token] = Field(default_factory=list)
    top_tokens: list[list[Token]] | None = None
    best_of_sequences: list[Any] | None = None


class GenerateResponse(BaseModel):
    generated_text: str
    details: Details | None = None


class StreamDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    input_length: int


class StreamResponse(BaseModel):
    index: int
    token: Token
    top_tokens: list[Token] | None = None
    generated_text: str | None = None
    details: StreamDetails | None = None


class ErrorResponse(BaseModel):
    error: str
    error_type: str


class CompletionRequest(BaseModel):
    """OpenAI's `POST /v1/completions` body (the fields this server honours; `model` picks an adapter)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int | None = 16
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None
    n: int = 1
    echo: bool = False
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    best_of: int | None = None
    logprobs: int | None = None
    suffix: str | None = None
