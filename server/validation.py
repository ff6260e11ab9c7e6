"""Request validation TGI's way: every bound checked before queueing, each 422 naming the field, bound and value.

`prepare` turns a TGI request (`inputs` + `parameters`) into the engine's `GenerationRequest`: tokenization,
truncation, the adapter lookup, and the two healing forms (the `token_healing` extension, which rewinds the
prompt here; and TGI's `grammar` regex of the form re.escape(text) + "[\\s\\S]*", a constrained start).
Called by `server.app` and `server.openai`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.completion.profile import CompletionProfile
from core.errors import ValidationError
from core.healing import rewind_prefix
from server.adapters import AdapterDirectory
from server.generation import GenerationRequest, SamplingParams
from server.schema import GenerateParameters

_ANY_SUFFIX = r"[\s\S]*"


@dataclass(frozen=True)
class Limits:
    max_input_tokens: int
    max_total_tokens: int
    max_stop_sequences: int
    default_max_new_tokens: int
    max_best_of: int = 1


@dataclass(frozen=True)
class Prepared:
    request: GenerationRequest
    inputs: str          # the text before the generation (for return_full_text)
    details: bool
    return_full_text: bool


def _check(condition: bool, field: str, rule: str, value: Any) -> None:
    if not condition:
        raise ValidationError(f"`{field}` must be {rule}, got {value!r}")


def grammar_start(grammar: Any) -> str:
    """The literal a healing-form grammar makes the output start with; 422 for any other grammar."""
    if grammar.type != "regex":
        raise ValidationError(f"`parameters.grammar.type` must be \"regex\" (json grammars are not supported by "
                              f"this server), got {grammar.type!r}")
    value = grammar.value
    rule = "a constrained start, re.escape(text) + \"[\\s\\S]*\" (other regexes are not supported)"
    _check(isinstance(value, str) and value.endswith(_ANY_SUFFIX), "parameters.grammar.value", rule, value)
    escaped = value[: -len(_ANY_SUFFIX)]
    literal = re.sub(r"\\(.)", r"\1", escaped, flags=re.DOTALL)
    _check(re.escape(literal) == escaped, "parameters.grammar.value", rule, value)
    return literal


def prepare(inputs: str, p: GenerateParameters, tokenizer: Any, limits: Limits,
            adapters: AdapterDirectory, base_profile: CompletionProfile | None = None) -> Prepared:
    """Validate a request and build what the engine runs; raises ValidationError (422) naming the field."""
    _check(bool(inputs), "inputs", "a non-empty string", inputs)
    _check(p.best_of is None or 0 < p.best_of <= limits.max_best_of, "parameters.best_of",
           f"<= {limits.max_best_of}", p.best_of)
    _check(p.temperature is None or p.temperature > 0, "parameters.temperature", "> 0", p.temperature)
    _check(p.repetition_penalty is None or p.repetition_penalty > 0, "parameters.repetition_penalty", "> 0",
           p.repetition_penalty)
    _check(p.frequency_penalty is None or -2.0 <= p.frequency_penalty <= 2.0, "parameters.frequency_penalty",
           "in [-2, 2]", p.frequency_penalty)
    _check(p.top_k is None or p.top_k > 0, "parameters.top_k", "> 0", p.top_k)
    _check(p.top_p is None or 0 < p.top_p <= 1.0, "parameters.top_p", "in (0, 1]", p.top_p)
    _check(p.typical_p is None or p.typical_p == 1.0, "parameters.typical_p", "unset (not supported)", p.typical_p)
    _check(not p.top_n_tokens, "parameters.top_n_tokens", "unset or 0 (not supported)", p.top_n_tokens)
    _check(not p.watermark, "parameters.watermark", "false (not supported)", p.watermark)
    _check(p.seed is None or 0 <= p.seed < 2**63, "parameters.seed", "in [0, 2**63)", p.seed)
    _check(len(p.stop) <= limits.max_stop_sequences, "parameters.stop",
           f"at most {limits.max_stop_sequences} sequences", len(p.stop))
    _check(p.max_new_tokens is None or p.max_new_tokens > 0, "parameters.max_new_tokens", "> 0", p.max_new_tokens)
    _check(p.truncate is None or 0 < p.truncate <= limits.max_input_tokens, "parameters.truncate",
           f"in 1..{limits.max_input_tokens}", p.truncate)

    adapter = adapters.resolve(p.adapter_id, "parameters.adapter_id") if p.adapter_id else None
    required = grammar_start(p.grammar) if p.grammar is not None else ""
    prompt, hidden = inputs, ""
    if p.token_healing:
        backend = getattr(tokenizer, "backend_tokenizer", None) or tokenizer
        rewind = rewind_prefix(inputs, backend)
        prompt, hidden = rewind.prefix, rewind.removed
        required = hidden + required
        _check(bool(prompt), "inputs", "longer than the token that token healing removes", inputs)

    # The profile's BOS rule, the one training and the exam used; without a profile, TGI's (special tokens on).
    profile = adapter.profile if adapter is not None and adapter.profile is not None else base_profile
    add_special = profile.bos.add_special_tokens if profile is not None else True
    ids = tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
    if p.truncate is not None and len(ids) > p.truncate:
        ids = ids[-p.truncate:]
    _check(len(ids) <= limits.max_input_tokens, "inputs", f"at most {limits.max_input_tokens} tokens",
           f"{len(ids)} tokens")
    max_new = p.max_new_tokens or min(limits.default_max_new_tokens, limits.max_total_tokens - len(ids))
    _check(len(ids) + max_new <= limits.max_total_tokens, "parameters.max_new_tokens",
           f"<= {limits.max_total_tokens - len(ids)} (max_total_tokens {limits.max_total_tokens} minus "
           f"{len(ids)} input tokens)", max_new)

    sampling = SamplingParams(do_sample=p.do_sample, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
                              repetition_penalty=p.repetition_penalty, frequency_penalty=p.frequency_penalty,
                              seed=p.seed)
    request = GenerationRequest(input_ids=list(ids), max_new_tokens=max_new, stop=tuple(p.stop), sampling=sampling,
                                adapter_id=adapter.id if adapter else None,
                                adapter_path=adapter.path if adapter else None,
                                required_start=required, hidden_start=hidden,
                                decoder_input_details=p.decoder_input_details and p.details)
    return Prepared(request, inputs, p.details, bool(p.return_full_text))
