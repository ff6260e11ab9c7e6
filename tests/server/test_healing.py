"""Token healing: TGI's `grammar` of the healing form as a constrained start, and the `token_healing` extension."""

from __future__ import annotations

import httpx
import pytest

from core.healing import healing_grammar, rewind_prefix, strip_healed

CURSOR_IN_WORD = "import json\n\ndef load(path):\n    with open(path) as fh:\n        return json.lo"


@pytest.fixture
async def http(make_app):
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as c:
        yield c


async def _generate(http, inputs: str, **params) -> dict:
    r = await http.post("/generate", json={"inputs": inputs, "parameters": {"max_new_tokens": 8, **params}})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("literal", ["lo", "loads(", "ä錯誤😋\n  x", "a\u0308 (\\d+)*?"])
async def test_grammar_constrains_the_start(http, literal):
    free = await _generate(http, "x = ")
    assert not free["generated_text"].startswith(literal)  # the random model would not write it by itself
    out = await _generate(http, "x = ", grammar=healing_grammar(literal), max_new_tokens=len(literal.encode()) + 4)
    assert out["generated_text"].startswith(literal)


async def test_token_healing_extension_returns_text_after_the_cursor(http, tiny_tokenizer):
    rewind = rewind_prefix(CURSOR_IN_WORD, tiny_tokenizer)
    assert rewind.removed and CURSOR_IN_WORD == rewind.prefix + rewind.removed
    via_grammar = await _generate(http, rewind.prefix, grammar=healing_grammar(rewind.removed))
    assert via_grammar["generated_text"].startswith(rewind.removed)
    healed = await _generate(http, CURSOR_IN_WORD, token_healing=True)
    assert healed["generated_text"] == strip_healed(via_grammar["generated_text"], rewind.removed)
    full = await _generate(http, CURSOR_IN_WORD, token_healing=True, return_full_text=True)
    assert full["generated_text"] == CURSOR_IN_WORD + healed["generated_text"]


async def test_token_healing_stream_over_http(http):
    body = {"inputs": CURSOR_IN_WORD, "parameters": {"max_new_tokens": 8, "token_healing": True}}
    plain = (await http.post("/generate", json=body)).json()["generated_text"]
    stream = await http.post("/generate_stream", json=body)
    import json

    events = [json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:")]
    assert "".join(e["token"]["text"] for e in events) == events[-1]["generated_text"] == plain


@pytest.mark.parametrize("grammar", [
    {"type": "regex", "value": r"\d+"},
    {"type": "regex", "value": r"ab[\s\S]*x"},
    {"type": "regex", "value": r"a.b[\s\S]*"},
    {"type": "json", "value": {"type": "object"}},
])
async def test_other_grammars_are_rejected(http, grammar):
    r = await http.post("/generate", json={"inputs": "x", "parameters": {"grammar": grammar}})
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation"
    assert "parameters.grammar" in r.json()["error"]


def test_token_bytes_agree_with_decoding(tiny_tokenizer):
    from core.token_bytes import token_bytes

    texts = token_bytes(tiny_tokenizer)
    assert len(texts) == tiny_tokenizer.get_vocab_size()
    for i, raw in enumerate(texts):
        decoded = tiny_tokenizer.decode([i], skip_special_tokens=False)
        if "\ufffd" not in decoded:
            assert raw.encode("latin-1").decode("utf-8") == decoded, i
    # every byte is reachable, so any text can be re-typed
    assert {t for t in texts if len(t) == 1} >= {chr(b) for b in range(256)}


@pytest.mark.parametrize("inputs,after_cursor", [
    ("import json\n\n\ndef load_config(path):\n    with open(path) as fh:\n        return json.lo", "ad(fh)"),
    ("import os\n\n\ndef list_python_files(root):\n    out = []\n    for dirpath, dirnames, filenames in os.wa", "lk("),
])
async def test_token_healing_on_a_real_model(smollm2_app, inputs, after_cursor):
    """SmolLM2 continues `json.lo` with `action(...` on its own; healed, it writes `json.load(fh)`."""
    r = await smollm2_app.post("/generate", json={"inputs": inputs, "parameters": {"max_new_tokens": 4,
                                                                                   "token_healing": True}})
    assert r.json()["generated_text"].startswith(after_cursor)


@pytest.fixture(scope="module")
def _smollm2_server(smollm2_dir):
    from server.app import create_app

    app = create_app(smollm2_dir, threads=1)
    yield app
    app.state.server.engine.close()


@pytest.fixture
async def smollm2_app(_smollm2_server):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_smollm2_server), base_url="http://t",
                                 timeout=120) as c:
        yield c
