"""The other routes in-process: /info, /health, /tokenize, /metrics, OpenAI completions and models, adapters."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from tests.server.conftest import make_adapter


@pytest.fixture
def app(make_app, adapters_dir, tmp_path):
    live = tmp_path / "adapters"
    shutil.copytree(adapters_dir, live)
    return make_app(adapters_dir=live)


@pytest.fixture
async def http(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as c:
        yield c


async def test_info_has_tgi_fields_and_inhouse_extensions(http):
    info = (await http.get("/info")).json()
    for key in ("model_id", "max_input_tokens", "max_total_tokens", "max_concurrent_requests", "max_stop_sequences",
                "max_best_of", "max_batch_total_tokens", "validation_workers", "version", "sha", "router"):
        assert key in info
    assert info["fim_format"] == "starcoder"
    assert info["adapters"] == ["team-a"]
    assert info["token_healing"] is True
    assert info["max_input_tokens"] < info["max_total_tokens"] <= 2048
    assert (await http.get("/health")).status_code == 200


async def test_health_is_503_when_the_engine_stopped(app, http):
    app.state.server.engine.close()
    assert (await http.get("/health")).status_code == 503


async def test_tokenize_gives_ids_and_offsets(http, tiny_tokenizer):
    text = "def ä錯誤(x):\r\n    return 😋"
    toks = (await http.post("/tokenize", json={"inputs": text})).json()
    assert [t["id"] for t in toks] == tiny_tokenizer.encode(text).ids
    assert all(text[t["start"]:t["stop"]] == t["text"] for t in toks)  # byte tokens of one char share its span
    assert toks[0]["start"] == 0 and toks[-1]["stop"] == len(text)
    assert all(a["start"] <= b["start"] for a, b in zip(toks, toks[1:], strict=False))


async def test_metrics_use_tgi_names(http):
    await http.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 2}})
    await http.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": -1}})
    text = (await http.get("/metrics")).text
    for name in ("tgi_request_count 2.0", "tgi_request_success 1.0", 'tgi_request_failure{err="validation"} 1.0',
                 "tgi_request_duration_bucket", "tgi_queue_size", "tgi_batch_current_size",
                 "tgi_request_generated_tokens_sum 2.0", "tgi_request_input_length_count 1.0"):
        assert name in text


async def test_pydantic_errors_name_the_field(http):
    r = await http.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": "many"}})
    assert r.status_code == 422 and "`parameters.max_new_tokens`" in r.json()["error"]
    r = await http.post("/generate", json={"inputs": "x", "parameters": {"nonsense": 1}})
    assert r.status_code == 422 and "`parameters.nonsense` is not a known parameter" in r.json()["error"]
    r = await http.post("/generate", json={"parameters": {}})
    assert r.status_code == 422 and r.json() == {"error": "`inputs` is required", "error_type": "validation"}
    r = await http.post("/generate", json={"inputs": "x", "parameters": {"stop": ["a"] * 17}})
    assert r.json()["error"] == "`parameters.stop` must be at most 16 sequences, got 17"
    r = await http.post("/generate", json={"inputs": "x" * 5000})
    assert r.status_code == 422 and "`inputs` must be at most 2047 tokens" in r.json()["error"]


@pytest.mark.parametrize("bad", ["../team-a", "team-a/../team-a", "..", "/etc", "team-a/", "a b", "", ".hidden"])
async def test_adapter_ids_cannot_escape_the_directory(http, bad, tmp_path):
    r = await http.post("/generate", json={"inputs": "x", "parameters": {"adapter_id": bad, "max_new_tokens": 1}})
    if bad == "":  # an empty id means the base model, as with TGI
        assert r.status_code == 200
        return
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation" and "parameters.adapter_id" in r.json()["error"]


async def test_symlink_out_of_the_directory_is_refused(app, http, adapters_dir, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(adapters_dir / "team-a", outside)
    (app.state.server.adapters.directory / "sneaky").symlink_to(outside, target_is_directory=True)
    r = await http.post("/generate", json={"inputs": "x", "parameters": {"adapter_id": "sneaky"}})
    assert r.status_code == 422


async def test_new_adapter_is_picked_up_without_restart(app, http, tiny_model_dir, tmp_path):
    live = app.state.server.adapters.directory
    r = await http.post("/generate", json={"inputs": "x = ", "parameters": {"adapter_id": "team-b"}})
    assert r.status_code == 422
    make_adapter(tiny_model_dir, live / "team-b", seed=5)
    assert (await http.get("/info")).json()["adapters"] == ["team-a", "team-b"]
    outs = {}
    for adapter in ("team-a", "team-b", None):
        r = await http.post("/generate", json={"inputs": "x = ", "parameters": {"adapter_id": adapter,
                                                                                 "max_new_tokens": 8}})
        assert r.status_code == 200
        outs[adapter] = r.json()["generated_text"]
    assert len(set(outs.values())) == 3
    # A retrained adapter replaces the directory: the next request is served by the new weights.
    make_adapter(tiny_model_dir, tmp_path / "team-b-v2", seed=9)
    shutil.rmtree(live / "team-b")
    shutil.copytree(tmp_path / "team-b-v2", live / "team-b")
    r = await http.post("/generate", json={"inputs": "x = ", "parameters": {"adapter_id": "team-b",
                                                                             "max_new_tokens": 8}})
    assert r.status_code == 200 and r.json()["generated_text"] != outs["team-b"]
    shutil.rmtree(live / "team-b")
    r = await http.post("/generate", json={"inputs": "x = ", "parameters": {"adapter_id": "team-b"}})
    assert r.status_code == 422


async def test_a_registry_id_with_dots_is_served_like_any_other(app, http, tiny_model_dir):
    """The registry serves versions as `team.name.vN`; peft cannot name a module with a dot (the engine spells it
    out), and the same weights under a plain id give the same text."""
    from server.engine import peft_name

    live = app.state.server.adapters.directory
    shutil.copytree(live / "team-a", live / "red.main.v1")
    outs = []
    for adapter in ("red.main.v1", "team-a"):
        r = await http.post("/generate", json={"inputs": "x = ", "parameters": {"adapter_id": adapter,
                                                                                 "max_new_tokens": 8}})
        assert r.status_code == 200, r.text
        outs.append(r.json()["generated_text"])
    assert outs[0] == outs[1]
    assert len({peft_name(i) for i in ("a.b", "a_ob", "a_b", "a__b", "a.b.c")}) == 5  # never two ids on one name
    assert "." not in peft_name("red.main.v1")


async def test_mixed_adapters_in_one_batch_match_alone(http):
    import asyncio

    async def gen(adapter):
        r = await http.post("/generate", json={"inputs": "def f(x):\n", "parameters": {
            "adapter_id": adapter, "max_new_tokens": 10, "details": True}})
        return [t["id"] for t in r.json()["details"]["tokens"]]

    alone = [await gen("team-a"), await gen(None)]
    together = await asyncio.gather(gen("team-a"), gen(None), gen("team-a"), gen(None))
    assert together == alone * 2


async def test_openai_completions_and_models(http):
    models = (await http.get("/v1/models")).json()
    ids = [m["id"] for m in models["data"]]
    assert ids[1:] == ["team-a"] and models["object"] == "list"
    base = (await http.post("/v1/completions", json={"prompt": "x = ", "max_tokens": 6})).json()
    tgi = (await http.post("/generate", json={"inputs": "x = ", "parameters": {"max_new_tokens": 6}})).json()
    assert base["choices"][0]["text"] == tgi["generated_text"]
    assert base["usage"]["completion_tokens"] == 6 and base["choices"][0]["finish_reason"] == "length"
    tuned = (await http.post("/v1/completions", json={"model": "team-a", "prompt": "x = ", "max_tokens": 6})).json()
    assert tuned["choices"][0]["text"] != base["choices"][0]["text"] and tuned["model"] == "team-a"
    named_base = (await http.post("/v1/completions", json={"model": ids[0], "prompt": "x = ", "max_tokens": 6})).json()
    assert named_base["choices"][0]["text"] == base["choices"][0]["text"]
    bad = await http.post("/v1/completions", json={"model": "../x", "prompt": "x"})
    assert bad.status_code == 422 and "`model`" in bad.json()["error"]
    stream = await http.post("/v1/completions", json={"prompt": "x = ", "max_tokens": 6, "stream": True})
    lines = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == base["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_info_reports_the_base_and_each_adapters_completion_profile(app, http, caplog):
    """The base's profile from its inhouse.json; an adapter made before profiles gets one derived from what it
    recorded (logged once, not on every request); one with an unusable profile is left out and refused by 422."""
    import logging

    from core.completion.profile import CompletionProfile

    adapters_dir = app.state.server.adapters.directory

    info = (await http.get("/info")).json()
    base = CompletionProfile.from_dict(info["profile"])
    assert (base.fim_format, base.mode, base.heal, base.max_prompt_tokens) == ("starcoder", "spm+ctx", True, 512)
    legacy = CompletionProfile.from_dict(info["adapter_profiles"]["team-a"])
    assert legacy.mode == "spm" and legacy.bos.value == "none"  # trained without special tokens
    explicit = adapters_dir / "team-p"
    bad = adapters_dir / "team-x"
    for d, profile in ((explicit, {"fim_format": "starcoder", "order": "psm", "heal": False}),
                       (bad, {"fim_format": "starcoder", "order": "fim"})):
        shutil.copytree(adapters_dir / "team-a", d)
        meta = json.loads((d / "inhouse.json").read_text())
        (d / "inhouse.json").write_text(json.dumps({**meta, "profile": profile}))
    with caplog.at_level(logging.INFO, logger="core.completion.profile"):
        for _ in range(3):
            info = (await http.get("/info")).json()
    derived = [r.message for r in caplog.records if "has no completion profile" in r.message]
    assert derived == []  # team-a's was derived (and logged) once, at the first /info above, not again
    assert info["adapter_profiles"]["team-p"]["order"] == "psm"
    assert "team-x" in info["adapters"] and "team-x" not in info["adapter_profiles"]
    resp = await http.post("/generate", json={"inputs": "def f(", "parameters": {"adapter_id": "team-x",
                                                                                  "max_new_tokens": 2}})
    assert resp.status_code == 422 and "`order` must be one of psm, spm, l2r, got 'fim'" in resp.json()["error"]


def test_prompts_are_encoded_with_the_profiles_bos_rule(tiny_model_dir, tmp_path):
    """One BOS rule for training, the exam and serving: a tokenizer that adds a BOS gets it under `model` and
    not under `none`, whichever adapter's profile applies."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from core.completion.profile import BosPolicy, CompletionProfile
    from server.adapters import AdapterDirectory
    from server.schema import GenerateParameters
    from server.validation import Limits, prepare

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    bos = tok.bos_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(single=f"{tok.bos_token} $A", special_tokens=[
        (tok.bos_token, bos)])
    limits = Limits(max_input_tokens=100, max_total_tokens=200, max_stop_sequences=4, default_max_new_tokens=4)
    adapters = AdapterDirectory(None)
    params = GenerateParameters(max_new_tokens=2)
    with_bos = prepare("def f(", params, tok, limits, adapters, CompletionProfile("starcoder", bos=BosPolicy.MODEL))
    without = prepare("def f(", params, tok, limits, adapters, CompletionProfile("starcoder", bos=BosPolicy.NONE))
    assert with_bos.request.input_ids[0] == bos and with_bos.request.input_ids[1:] == without.request.input_ids
    assert bos not in without.request.input_ids

    from finetune.data import bos_token_id

    assert bos_token_id(tok, BosPolicy.MODEL) == bos and bos_token_id(tok, BosPolicy.NONE) is None
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)  # adds nothing: no BOS whatever the rule says
    assert bos_token_id(plain, BosPolicy.MODEL) is None
