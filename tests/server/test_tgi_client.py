"""The embedded server driven by huggingface_hub's AsyncInferenceClient (the TGI client), on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import (
    GenerationError,
    HfHubHTTPError,
    OverloadedError,
    UnknownError,
    ValidationError,
)

PROMPT = "def parse(path):\n    "


def greedy_reference(model_dir, prompt: str, n: int, adapter_dir=None, int8: bool = False) -> list[int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if int8:  # the torch engine's CPU weights: the same int8 layers, run by transformers' own generate
        from server.quantize import quantize_linears

        quantize_linears(model)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
    return out[0, ids["input_ids"].shape[1]:].tolist()


@pytest.fixture
async def tgi_client():
    """huggingface_hub's AsyncInferenceClient for a server URL; each one made is closed after the test (an open one
    leaks its sockets, which `filterwarnings = error` reports as unclosed)."""
    made: list[AsyncInferenceClient] = []

    def make(base_url: str, **kwargs) -> AsyncInferenceClient:
        made.append(AsyncInferenceClient(base_url=base_url, timeout=30, **kwargs))
        return made[-1]

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def url(serve, adapters_dir) -> str:
    return serve(adapters_dir=adapters_dir)


async def test_generate_details_match_model_generate(tgi_client, url, tiny_model_dir):
    """On the default engine (llama.cpp; the tiny model's GGUF is F32): transformers' own greedy ids."""
    client = tgi_client(url)
    out = await client.text_generation(PROMPT, max_new_tokens=12, details=True)
    ids = [t.id for t in out.details.tokens]
    assert out.details.generated_tokens == len(ids) == 12
    assert out.details.finish_reason == "length"
    assert ids == greedy_reference(tiny_model_dir, PROMPT, 12)
    assert out.generated_text == "".join(t.text for t in out.details.tokens)
    with pytest.raises(Exception, match="decoder_input_details.*--engine torch"):
        await client.text_generation(PROMPT, max_new_tokens=2, details=True, decoder_input_details=True)


async def test_torch_engine_details_and_prompt_logprobs_match_model_generate(tgi_client, serve, tiny_model_dir):
    """The torch engine (GPUs; `--engine torch` on a CPU, int8 weights there) gives the prompt's log-probabilities
    too, which llama.cpp's server does not."""
    client = tgi_client(serve(engine="torch"))
    out = await client.text_generation(PROMPT, max_new_tokens=12, details=True, decoder_input_details=True)
    ids = [t.id for t in out.details.tokens]
    assert out.details.generated_tokens == len(ids) == 12
    assert ids == greedy_reference(tiny_model_dir, PROMPT, 12, int8=True)
    assert out.generated_text == "".join(t.text for t in out.details.tokens)
    assert out.details.prefill and out.details.prefill[0].logprob is None
    assert all(p.logprob is not None and p.logprob <= 0 for p in out.details.prefill[1:])


async def test_stream_has_tgi_event_shape(tgi_client, url):
    client = tgi_client(url)
    events = [ev async for ev in await client.text_generation(PROMPT, max_new_tokens=6, details=True, stream=True)]
    assert len(events) == 6
    assert all(ev.generated_text is None for ev in events[:-1])
    last = events[-1]
    assert last.generated_text == "".join(ev.token.text for ev in events)
    assert last.details.finish_reason == "length" and last.details.generated_tokens == 6
    plain = await client.text_generation(PROMPT, max_new_tokens=6)
    assert plain == last.generated_text
    texts = [t async for t in await client.text_generation(PROMPT, max_new_tokens=6, stream=True)]
    assert "".join(texts) == plain


async def test_stop_sequence_ends_generation(tgi_client, url):
    client = tgi_client(url)
    full = await client.text_generation(PROMPT, max_new_tokens=16)
    assert len(full) > 4
    stop = full[2:4]
    out = await client.text_generation(PROMPT, max_new_tokens=16, stop=[stop], details=True)
    assert out.details.finish_reason == "stop_sequence"
    assert out.generated_text.endswith(stop)  # TGI keeps the stop sequence in the text
    assert full.startswith(out.generated_text)
    assert stop not in out.generated_text[:-len(stop)]


async def test_adapter_id_changes_output_like_peft(tgi_client, url, tiny_model_dir, adapters_dir):
    client = tgi_client(url)
    base = await client.text_generation(PROMPT, max_new_tokens=10, details=True)
    tuned = await client.text_generation(PROMPT, max_new_tokens=10, details=True, adapter_id="team-a")
    assert [t.id for t in tuned.details.tokens] == greedy_reference(tiny_model_dir, PROMPT, 10,
                                                                     adapters_dir / "team-a")
    assert [t.id for t in tuned.details.tokens] != [t.id for t in base.details.tokens]
    again = await client.text_generation(PROMPT, max_new_tokens=10, details=True)
    assert [t.id for t in again.details.tokens] == [t.id for t in base.details.tokens]


async def test_validation_errors_are_422_naming_the_field(tgi_client, url):
    client = tgi_client(url)
    with pytest.raises(ValidationError, match=r"`parameters.temperature` must be > 0, got -1.0"):
        await client.text_generation(PROMPT, temperature=-1.0)
    with pytest.raises(ValidationError, match=r"`parameters.adapter_id`.*team-a.*'nope'"):
        await client.text_generation(PROMPT, adapter_id="nope")
    with pytest.raises(ValidationError, match=r"`parameters.max_new_tokens` must be <= \d+"):
        await client.text_generation(PROMPT, max_new_tokens=100_000)
    with pytest.raises(ValidationError, match=r"`parameters.grammar.value`"):
        await client.text_generation(PROMPT, grammar={"type": "regex", "value": r"\d+"})


async def test_broken_adapter_is_424(tgi_client, serve, tmp_path, adapters_dir):
    broken = tmp_path / "adapters"
    (broken / "bad").mkdir(parents=True)
    (broken / "bad" / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}', encoding="utf-8")
    client = tgi_client(serve(adapters_dir=broken))
    with pytest.raises(GenerationError, match="adapter 'bad' could not be loaded"):
        await client.text_generation(PROMPT, adapter_id="bad")
    assert await client.text_generation(PROMPT, max_new_tokens=3)  # the server still serves


async def test_429_when_full_and_disconnect_stops_generation(tgi_client, serve):
    url = serve(max_concurrent_requests=1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async with http.stream("POST", "/generate_stream",
                               json={"inputs": PROMPT, "parameters": {"max_new_tokens": 1500}}) as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("data:")
            client = tgi_client(url)
            with pytest.raises(OverloadedError, match="overloaded"):
                await client.text_generation(PROMPT, max_new_tokens=2)
        # The client went away: the generation stops long before its 1500 tokens and the slot frees up.
        for _ in range(100):
            metrics = (await http.get("/metrics")).text
            if 'tgi_request_failure{err="cancelled"} 1.0' in metrics and "tgi_batch_current_size 0.0" in metrics:
                break
            await asyncio.sleep(0.05)
        assert 'tgi_request_failure{err="cancelled"} 1.0' in metrics
        assert 'tgi_request_failure{err="overloaded"} 1.0' in metrics
        out = await tgi_client(url).text_generation(PROMPT, max_new_tokens=2)
        assert isinstance(out, str)


async def test_non_streaming_disconnect_stops_generation(serve, slower_model_dir):
    url = serve(model_dir=slower_model_dir)
    async with httpx.AsyncClient(base_url=url) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 1500}},
                            timeout=0.5)
        for _ in range(100):
            metrics = (await http.get("/metrics")).text
            if 'tgi_request_failure{err="disconnected"} 1.0' in metrics:
                break
            await asyncio.sleep(0.05)
        assert 'tgi_request_failure{err="disconnected"} 1.0' in metrics
        assert "tgi_request_success 0.0" in metrics


async def test_bearer_auth(tgi_client, serve, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret\n", encoding="utf-8")
    url = serve(api_key_file=str(key))
    with pytest.raises(UnknownError, match="bearer token") as err:
        await tgi_client(url).text_generation(PROMPT, max_new_tokens=2)
    cause = err.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 401
    assert await tgi_client(url, api_key="s3cret").text_generation(
        PROMPT, max_new_tokens=2)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/health")).status_code == 200  # readiness probes need no token
        assert (await http.get("/info")).status_code == 401
        wrong = await http.get("/info", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error_type"] == "unauthorized"
