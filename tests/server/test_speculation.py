"""Prompt-lookup speculative decoding: drafts found in the prompt, and an output equal to token-by-token decoding."""

from __future__ import annotations

import httpx
import pytest

from server.speculation import prompt_lookup
from tests.server.test_tgi_client import greedy_reference


@pytest.mark.parametrize(("history", "k", "expected"), [
    ([1, 2, 3, 4, 5, 1, 2, 3], 4, [4, 5, 1, 2]),   # the 3-gram 1 2 3 seen before: what followed it
    ([0, 1, 2, 3, 9, 4, 1, 2, 3, 7, 0, 1, 2, 3], 1, [9]),  # the 4-gram 0 1 2 3 beats the later 3-gram
    ([1, 2, 3, 9, 7, 2, 3], 2, []),                # a 2-gram match is too weak a guess
    ([5, 6, 7, 8], 3, []),                         # nothing repeats
    ([1, 2, 3, 1, 2, 3, 8, 1, 2, 3], 1, [8]),      # the latest occurrence wins
    ([1, 2, 3, 1, 2, 3], 0, []),
    ([4], 3, []),
])
def test_prompt_lookup(history, k, expected):
    assert prompt_lookup(history, k) == expected


PROMPT = ("def area(width, height):\n    return width * height\n\n\ndef volume(width, height, depth):\n"
          "    return width * height * depth\n\n\ndef area(width, height):\n    return")


def _metric(app, name: str) -> float:
    text = app.state.server.metrics.render().decode()
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name)))


@pytest.fixture(scope="module")
def apps(tiny_model_dir):
    """The same server with drafts off (0) and on (6); one of each for the module."""
    from server.app import create_app

    made = {n: create_app(tiny_model_dir, draft_tokens=n, threads=1, engine="torch") for n in (0, 6)}
    yield made
    for app in made.values():
        app.state.server.engine.close()


@pytest.mark.parametrize("params", [
    {},
    {"repetition_penalty": 1.3},
    {"do_sample": True, "temperature": 0.7, "top_k": 20, "seed": 11},
])
async def test_drafts_give_the_token_by_token_output(apps, tiny_model_dir, params):
    out = {}
    for n, app in apps.items():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
            r = await http.post("/generate", json={"inputs": PROMPT, "parameters": {
                "max_new_tokens": 24, "details": True, **params}})
        assert r.status_code == 200, r.text
        out[n] = [(t["id"], round(t["logprob"], 3)) for t in r.json()["details"]["tokens"]]
    assert out[6] == out[0]
    assert _metric(apps[6], "inhouse_draft_tokens_proposed") > 0  # drafts were checked
    assert _metric(apps[0], "inhouse_draft_tokens_proposed") == 0
    if not params:
        assert [i for i, _ in out[6]] == greedy_reference(tiny_model_dir, PROMPT, 24, int8=True)
