"""The engine through the in-process app (httpx.ASGITransport): batching, prefix reuse, sampling parameters."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.server.test_tgi_client import greedy_reference

PROMPTS = ["import os\n", "def parse(path):\n    return", "class Foo:\n    def __init__(self):\n        self.",
           "x = 1", "for i in range(10):\n    print(i)\n# done\nwhile True:\n", "{", "return json.dumps(data, indent=2",
           "#include <stdio.h>\nint main(void) {\n"]


@pytest.fixture
def client(make_app):
    app = make_app(max_batch_size=4)

    async def factory():
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inhouse", timeout=60)

    return app, factory


async def _tokens(http: httpx.AsyncClient, prompt: str, **params) -> tuple[list[int], httpx.Response]:
    r = await http.post("/generate", json={"inputs": prompt, "parameters": {"details": True, **params}})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["details"]["tokens"]], r


@pytest.mark.parametrize("engine", ["llamacpp", "torch"])
async def test_concurrent_requests_decode_together_and_match_generate(make_app, tiny_model_dir, engine):
    app = make_app(max_batch_size=4, engine=engine)
    lengths = [5, 17, 9, 30, 3, 12, 25, 8]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        results = await asyncio.gather(*[_tokens(http, p, max_new_tokens=n)
                                         for p, n in zip(PROMPTS, lengths, strict=False)])
    for (ids, _), prompt, n in zip(results, PROMPTS, lengths, strict=False):
        assert ids == greedy_reference(tiny_model_dir, prompt, n, int8=engine == "torch"), prompt
    if engine == "torch":
        metrics = app.state.server.metrics.render().decode()
        # Eight requests with a batch of four: far fewer decode forwards than tokens generated one by one.
        decode_steps = float(next(line.split()[-1] for line in metrics.splitlines()
                                  if line.startswith('tgi_batch_inference_count{method="decode"}')))
        assert decode_steps < sum(lengths) - len(lengths)
        return
    # Eight requests on four slots: far fewer decode calls than tokens generated one by one (llama.cpp's own
    # counters; they count the prompts' decode calls too).
    counters = app.state.server.engine.counters()
    assert counters["llamacpp:tokens_predicted_total"] == sum(lengths)
    assert counters["llamacpp:n_decode_total"] < sum(lengths)


async def test_prefix_cache_reuses_previous_prompt(client, tiny_model_dir):
    app, factory = client
    first = PROMPTS[4]
    typed = first + "    x = "
    async with await factory() as http:
        _, r1 = await _tokens(http, first, max_new_tokens=4)
        ids, r2 = await _tokens(http, typed, max_new_tokens=6)
    assert r1.headers["x-prefix-reused-tokens"] == "0"
    assert int(r2.headers["x-prefix-reused-tokens"]) >= int(r1.headers["x-prompt-tokens"]) - 2
    assert ids == greedy_reference(tiny_model_dir, typed, 6)


async def test_prefix_cache_is_per_adapter(make_app, adapters_dir):
    app = make_app(adapters_dir=adapters_dir)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        _, r1 = await _tokens(http, PROMPTS[1], max_new_tokens=2)
        _, r2 = await _tokens(http, PROMPTS[1] + " x", max_new_tokens=2, adapter_id="team-a")
        _, r3 = await _tokens(http, PROMPTS[1] + " x", max_new_tokens=2)
    assert r2.headers["x-prefix-reused-tokens"] == "0"
    assert int(r3.headers["x-prefix-reused-tokens"]) > 0


async def test_sampling_is_seeded_and_reported(client):
    _, factory = client
    params = {"do_sample": True, "temperature": 1.5, "top_k": 50, "top_p": 0.95, "seed": 7, "max_new_tokens": 12}
    async with await factory() as http:
        a, ra = await _tokens(http, PROMPTS[0], **params)
        b, _ = await _tokens(http, PROMPTS[0], **params)
        c, _ = await _tokens(http, PROMPTS[0], **{**params, "seed": 8})
        greedy, _ = await _tokens(http, PROMPTS[0], max_new_tokens=12)
        unseeded = await http.post("/generate", json={"inputs": PROMPTS[0], "parameters": {
            "do_sample": True, "max_new_tokens": 2, "details": True}})
    assert a == b and a != c and a != greedy
    assert ra.json()["details"]["seed"] == 7
    assert isinstance(unseeded.json()["details"]["seed"], int)


async def test_repetition_penalty_and_top_k_one(client):
    _, factory = client
    async with await factory() as http:
        plain, _ = await _tokens(http, PROMPTS[1], max_new_tokens=12)
        penalised, _ = await _tokens(http, PROMPTS[1], max_new_tokens=12, repetition_penalty=3.0)
        top1, _ = await _tokens(http, PROMPTS[1], max_new_tokens=12, do_sample=True, top_k=1, seed=3)
    assert len(set(plain)) < len(plain)  # the tiny random model repeats itself
    assert len(set(penalised)) > len(set(plain))
    assert top1 == plain  # sampling among one candidate is greedy


async def test_return_full_text_truncate_and_compat_route(client):
    _, factory = client
    async with await factory() as http:
        r = await http.post("/generate", json={"inputs": "x = 1", "parameters": {"max_new_tokens": 3,
                                                                                 "return_full_text": True}})
        plain = (await http.post("/generate", json={"inputs": "x = 1", "parameters": {"max_new_tokens": 3}})).json()
        assert r.json()["generated_text"] == "x = 1" + plain["generated_text"]
        long = PROMPTS[4] * 4
        t = await http.post("/generate", json={"inputs": long, "parameters": {"max_new_tokens": 2, "truncate": 5}})
        assert t.headers["x-prompt-tokens"] == "5"
        compat = await http.post("/", json={"inputs": "x = 1", "parameters": {"max_new_tokens": 3}})
        assert compat.json() == [plain]
        stream = await http.post("/", json={"inputs": "x = 1", "parameters": {"max_new_tokens": 3}, "stream": True})
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.text.count("data:") == 3


async def test_eos_token_finishes(make_app, tiny_model_dir):
    """A model whose EOS is the token it always predicts stops at once with finish_reason eos_token."""
    app = make_app()
    engine = app.state.server.engine
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        ids, _ = await _tokens(http, PROMPTS[0], max_new_tokens=3)
        engine.eos_ids = {ids[0]}
        r = await http.post("/generate", json={"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 3,
                                                                                    "details": True}})
    body = r.json()
    assert body["details"]["finish_reason"] == "eos_token"
    assert body["details"]["generated_tokens"] == 1
    assert body["generated_text"] == ""
