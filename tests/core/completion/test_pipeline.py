"""The pipeline wiring, with a recording backend at the `CompletionBackend` seam (the real server is
exercised end to end in tests/lsp)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.client import BackendInfo, CompletionRequest, CompletionResult
from core.completion.pipeline import CompletionInput, CompletionPipeline
from core.completion.profile import CompletionProfile, PromptOrder
from core.errors import BackendUnavailableError, ConfigError


@dataclass
class RecordingBackend:
    reply: str = "return a + b\n\ndef other():\n    pass\n"
    requests: list[CompletionRequest] = field(default_factory=list)
    down: bool = False
    profile: CompletionProfile | None = CompletionProfile("smollm2", order=PromptOrder.PSM, heal=False)

    async def info(self) -> BackendInfo:
        if self.down:
            raise BackendUnavailableError("down")
        return BackendInfo("tiny", "smollm2", 300, 400, (), True, profile=self.profile,
                           adapter_profiles={"team": CompletionProfile("smollm2", order=PromptOrder.L2R,
                                                                       context=False)})

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        self.requests.append(req)
        if self.down:
            raise BackendUnavailableError("down")
        return CompletionResult(self.reply, 7, 1.0, "length")

    async def aclose(self) -> None:
        pass


async def test_pipeline_runs_every_stage(tiny_tokenizer):
    backend = RecordingBackend()
    pipe = CompletionPipeline(backend, overrides={"max_prompt_tokens": 4096}, tokenizer=tiny_tokenizer)
    docs = {"lib.py": "def helper(v):\n    return v\n"}
    out = await pipe.complete(CompletionInput("m.py", "def add(a, b):\n    ", "\n", "python", docs))
    assert out.text == "return a + b"
    assert out.decision.multiline
    req = backend.requests[-1]
    assert req.prompt.startswith("<file_sep><jupyter_start>m.py\ndef add")  # the base's profile: PSM, context
    assert req.max_new_tokens == pipe.profile.max_new_tokens_multiline == 128
    assert pipe.resolved().source == "the backend /info, base model + settings max_prompt_tokens"
    assert "<|endoftext|>" in req.stop
    # The backend's limits win over the setting: 300 input tokens, 400 total minus the new tokens.
    assert out.prompt.tokens <= min(300, 400 - req.max_new_tokens)
    assert set(out.timings) >= {"context", "prompt", "backend", "postprocess", "total"}


async def test_pipeline_skips_without_a_request():
    backend = RecordingBackend()
    pipe = CompletionPipeline(backend, enabled_languages=("python",))
    out = await pipe.complete(CompletionInput("m.go", "package m\nvar x = ", "\n", "go"))
    assert out.text == "" and "disabled" in out.reason and not backend.requests


async def test_pipeline_propagates_backend_errors():
    pipe = CompletionPipeline(RecordingBackend(down=True), CompletionProfile("starcoder"))
    with pytest.raises(BackendUnavailableError):
        await pipe.complete(CompletionInput("m.py", "x = ", "\n", "python"))


async def test_the_adapters_profile_from_info_is_used_and_settings_override_it(tiny_tokenizer):
    backend = RecordingBackend()
    pipe = CompletionPipeline(backend, adapter_id="team", tokenizer=tiny_tokenizer)
    await pipe.complete(CompletionInput("m.py", "def add(a, b):\n    return a", "\n", "python"))
    req = backend.requests[-1]
    assert req.adapter_id == "team"
    assert req.prompt == "def add(a, b):\n    return" and req.heal == " a"  # l2r, healed: no sentinel at all
    pipe = CompletionPipeline(backend, adapter_id="team", overrides={"order": "spm", "heal": False},
                              tokenizer=tiny_tokenizer)
    await pipe.complete(CompletionInput("m.py", "def add(a, b):\n    return a", "\n", "python"))
    req = backend.requests[-1]
    assert req.prompt.startswith("<jupyter_start><jupyter_text>\n<jupyter_code>def add") and req.heal == ""
    assert pipe.resolved().source.endswith("adapter team + settings heal, order")


async def test_no_profile_anywhere_is_a_clear_error_not_a_default_format():
    pipe = CompletionPipeline(RecordingBackend(profile=None), backend_url="http://tgi:8080")
    with pytest.raises(ConfigError, match="no completion profile for the base model: http://tgi:8080 reports none"):
        await pipe.complete(CompletionInput("m.py", "x = ", "\n", "python"))
    # A format given in settings is enough: the rest of the profile takes its defaults.
    pipe = CompletionPipeline(RecordingBackend(profile=None), overrides={"fim_format": "starcoder"})
    assert pipe.profile == CompletionProfile("starcoder")
