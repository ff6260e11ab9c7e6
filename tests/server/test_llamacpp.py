"""The llama.cpp engine (the CPU default): adapters on its slots, hot adapters, the grammar of a constrained start,
tokens that end inside a character, what /info and /metrics say. The TGI contract itself is tested on this engine
by the other modules of tests/server."""

from __future__ import annotations

import asyncio
import shutil
import threading

import httpx
import pytest

from server.llamacpp import start_grammar
from tests.server.conftest import make_adapter
from tests.server.test_tgi_client import greedy_reference

PROMPT = "def add(a, b):\n    return"


async def _generate(http: httpx.AsyncClient, adapter: str | None = None, **params) -> httpx.Response:
    body = {"max_new_tokens": 8, "details": True, **params, **({"adapter_id": adapter} if adapter else {})}
    return await http.post("/generate", json={"inputs": PROMPT, "parameters": body})


def _ids(r: httpx.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["details"]["tokens"]]


@pytest.mark.parametrize(("text", "grammar"), [
    ("lo", 'root ::= "lo" .*'),
    ('say "hi"\\n', 'root ::= "say \\"hi\\"\\\\n" .*'),
    ("a\nb\tc\r\x01", 'root ::= "a\\nb\\tc\\r\\x01" .*'),
    ("ä錯誤😋", 'root ::= "ä錯誤😋" .*'),
])
def test_start_grammar_is_the_text_then_anything(text, grammar):
    assert start_grammar(text) == grammar


async def test_the_base_after_an_adapter_on_the_same_slot_is_the_base(make_app, tiny_model_dir, adapters_dir):
    """One slot: the adapter's request leaves its key/values there. llama.cpp reused them for the next base
    request with the same prompt (the base then answered with the adapter's cache); the engine now asks for no
    reuse when a slot changes adapter."""
    app = make_app(adapters_dir=adapters_dir, max_batch_size=1)
    base_ref = greedy_reference(tiny_model_dir, PROMPT, 8)
    tuned_ref = greedy_reference(tiny_model_dir, PROMPT, 8, adapters_dir / "team-a")
    assert base_ref != tuned_ref
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        assert _ids(await _generate(http)) == base_ref
        tuned = await _generate(http, "team-a")
        assert _ids(tuned) == tuned_ref and tuned.headers["x-prefix-reused-tokens"] == "0"
        again = await _generate(http)
        assert _ids(again) == base_ref and again.headers["x-prefix-reused-tokens"] == "0"
        same = await _generate(http)  # the slot is the base's again: its prompt is reused
        assert _ids(same) == base_ref and int(same.headers["x-prefix-reused-tokens"]) > 0


async def test_an_adapter_added_replaced_and_removed_while_serving(make_app, tiny_model_dir, tmp_path):
    root = tmp_path / "adapters"
    root.mkdir()
    app = make_app(adapters_dir=root)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        base = _ids(await _generate(http))
        make_adapter(tiny_model_dir, tmp_path / "v1", seed=2)
        shutil.copytree(tmp_path / "v1", root / "team-b")
        first = _ids(await _generate(http, "team-b"))
        assert first == greedy_reference(tiny_model_dir, PROMPT, 8, root / "team-b") and first != base
        make_adapter(tiny_model_dir, tmp_path / "v2", seed=3)
        for name in ("adapter_model.safetensors", "adapter_config.json"):  # replaced in place, as a deploy does
            shutil.copy2(tmp_path / "v2" / name, root / "team-b" / name)
        second = _ids(await _generate(http, "team-b"))
        assert second == greedy_reference(tiny_model_dir, PROMPT, 8, tmp_path / "v2") and second != first
        assert _ids(await _generate(http)) == base  # the restart for the new adapter kept the base as it was
        shutil.rmtree(root / "team-b")
        gone = await _generate(http, "team-b")
        assert gone.status_code in (404, 422) and "team-b" in gone.text


async def test_a_token_that_ends_inside_a_character_is_counted_and_the_text_is_whole(make_app):
    """llama.cpp's server does not report a token that ends inside a UTF-8 character on its own: the text is
    whole (its bytes are exactly the constrained start) and `generated_tokens` counts every token."""
    from core.healing import healing_grammar

    app = make_app()
    literal = "ä錯誤😋"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        r = await http.post("/generate", json={"inputs": "x = ", "parameters": {
            "max_new_tokens": len(literal.encode()) + 2, "details": True, "grammar": healing_grammar(literal)}})
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["generated_text"].startswith(literal)
    assert body["generated_text"] == "".join(t["text"] for t in body["details"]["tokens"])
    assert body["details"]["generated_tokens"] == len(literal.encode()) + 2 > len(body["details"]["tokens"])


async def test_info_and_metrics_name_the_engine(make_app):
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        info = (await http.get("/info")).json()
        await _generate(http)
        metrics = (await http.get("/metrics")).text
    assert (info["engine"], info["engine_weights"], info["model_device_type"]) == ("llama.cpp", "F32", "cpu")
    assert (info["engine_threads"], info["engine_threads_from"]) == (1, "--threads")
    assert info["engine_from"] == "auto: a CPU serves with llama.cpp"
    assert "AVX2" in info["engine_build"] and "this CPU's" in info["engine_build"]  # the build, as llama.cpp says
    assert "llamacpp:tokens_predicted_total 8" in metrics and "tgi_request_success 1" in metrics
    assert app.state.server.engine.counters()["llamacpp:n_decode_total"] >= 8


def test_an_unknown_engine_or_gguf_type_is_a_config_error(make_app):
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="engine"):
        make_app(engine="vllm")
    with pytest.raises(ConfigError, match="gguf_type"):
        make_app(gguf_type="Q2_K")


async def test_requests_beyond_the_shared_cache_wait_and_idle_prompts_make_room(make_app, tiny_model_dir):
    """The slots share a cache of 256 tokens; each request needs ~150. llama.cpp fails every running request
    when the cache overflows ("Context size has been exceeded"): here they are admitted in turn, an idle slot's
    prompt erased when the next one needs its room, and every answer is still the model's own."""
    app = make_app(max_batch_size=4, max_input_tokens=200, max_total_tokens=256, kv_tokens=256)
    prompts = [f"# file {i}\n" + "def f(x):\n    return x * 2\n" * 8 for i in range(4)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120) as http:
        async def one(prompt: str) -> list[int]:
            r = await http.post("/generate", json={"inputs": prompt, "parameters": {"max_new_tokens": 40,
                                                                                    "details": True}})
            return _ids(r)

        for prompt, ids in zip(prompts, await asyncio.gather(*map(one, prompts)), strict=True):
            assert ids == greedy_reference(tiny_model_dir, prompt, 40)
        assert await one(prompts[0]) == greedy_reference(tiny_model_dir, prompts[0], 40)


def test_idle_prompts_beyond_the_newest_of_each_adapter_are_erased():
    """`_Slots` keeps `keep_idle` idle prompts per adapter (`[serve] idle_prompts`), the newest: llama.cpp's
    attention runs over every used cell of the shared cache, so each idle prompt slows every request."""
    from server.llamacpp import _Slots

    erased: list[int] = []
    never = threading.Event()
    slots = _Slots(4, 10_000, erased.append, keep_idle=1)
    a, _ = slots.acquire(None, [1, 2, 3], 10, never)
    b, _ = slots.acquire(None, [7, 8], 10, never)
    slots.release(a, None, [1, 2, 3])
    slots.release(b, None, [7, 8, 9])  # two idle base prompts, b the newer
    again, reuse = slots.acquire(None, [7, 8, 9, 10], 10, never)
    assert (again, reuse, erased) == (b, True, [])  # b running again; a is the base's one idle prompt
    slots.release(b, None, [7, 8, 9, 10])
    team, _ = slots.acquire("team", [5], 10, never)
    assert team not in (a, b) and erased == [a]  # the base keeps its newest idle prompt only
    slots.release(team, "team", [5, 6])
    assert slots.acquire(None, [1, 2, 3, 4], 10, never)[1] is True  # a's slot, erased: nothing to misuse
    every = _Slots(4, 10_000, erased.append)  # keep_idle None: every idle prompt stays
    held = [every.acquire(None, [i, i], 10, never)[0] for i in range(3)]
    for i, slot in enumerate(held):
        every.release(slot, None, [i, i, i])
    every.acquire(None, [7], 10, never)
    assert erased == [a]
