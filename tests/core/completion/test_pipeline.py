"""The pipeline wiring, with a recording backend at the `CompletionBackend` seam (the real server is
exercised end to end in tests/lsp)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.client import BackendInfo, CompletionRequest, CompletionResult
from core.completion.pipeline import CompletionInput, CompletionPipeline, PipelineSettings
from core.errors import BackendUnavailableError


@dataclass
class RecordingBackend:
    reply: str = "return a + b\n\ndef other():\n    pass\n"
    requests: list[CompletionRequest] = field(default_factory=list)
    down: bool = False

    async def info(self) -> BackendInfo:
        if self.down:
            raise BackendUnavailableError("down")
        return BackendInfo("tiny", "smollm2", 300, 400, (), True)

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        self.requests.append(req)
        if self.down:
            raise BackendUnavailableError("down")
        return CompletionResult(self.reply, 7, 1.0, "length")

    async def aclose(self) -> None:
        pass


async def test_pipeline_runs_every_stage(tiny_tokenizer):
    backend = RecordingBackend()
    pipe = CompletionPipeline(backend, PipelineSettings(max_prompt_tokens=4096), tokenizer=tiny_tokenizer)
    docs = {"lib.py": "def helper(v):\n    return v\n"}
    out = await pipe.complete(CompletionInput("m.py", "def add(a, b):\n    ", "\n", "python", docs))
    assert out.text == "return a + b"
    assert out.decision.multiline
    req = backend.requests[-1]
    assert "<jupyter_start>" in req.prompt  # the format /info reported
    assert req.max_new_tokens == pipe.settings.max_new_tokens_multiline
    assert "<|endoftext|>" in req.stop
    # The backend's limits win over the setting: 300 input tokens, 400 total minus the new tokens.
    assert out.prompt.tokens <= min(300, 400 - req.max_new_tokens)
    assert set(out.timings) >= {"context", "prompt", "backend", "postprocess", "total"}


async def test_pipeline_skips_without_a_request():
    backend = RecordingBackend()
    pipe = CompletionPipeline(backend, PipelineSettings(enabled_languages=("python",)))
    out = await pipe.complete(CompletionInput("m.go", "package m\nvar x = ", "\n", "go"))
    assert out.text == "" and "disabled" in out.reason and not backend.requests


async def test_pipeline_propagates_backend_errors():
    pipe = CompletionPipeline(RecordingBackend(down=True), PipelineSettings(fim_format="starcoder"))
    with pytest.raises(BackendUnavailableError):
        await pipe.complete(CompletionInput("m.py", "x = ", "\n", "python"))
