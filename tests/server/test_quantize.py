"""Int8 weights (`server.quantize`), the thread choice (`server.loading`) and what /info says about them."""

from __future__ import annotations

import httpx
import pytest
import torch

from server.loading import choose_threads
from server.quantize import Int8Linear, quantize_linears


def _linear(bias: bool = True) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(64, 48, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_is_close_to_float(bias):
    lin = _linear(bias)
    x = torch.randn(5, 7, 64)
    with torch.no_grad():  # the served path runs without autograd
        ref = lin(x)
        out = Int8Linear(lin)(x)
    assert out.shape == ref.shape
    assert float((out - ref).norm() / ref.norm()) < 0.02


def test_int8_linear_rows_do_not_depend_on_the_batch():
    """Per-row scales and integer sums: a row's result is bit-identical alone, in a batch, or split in two."""
    q = Int8Linear(_linear())
    x = torch.randn(6, 64)
    x[3] *= 100.0  # a row with a much larger range must not change the others' quantization
    together = q(x)
    for i in range(6):
        assert torch.equal(q(x[i:i + 1]), together[i:i + 1])
    assert torch.equal(torch.cat([q(x[:2]), q(x[2:])]), together)


def test_quantize_linears_replaces_every_linear_and_unties_the_head(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    n = quantize_linears(model)
    assert n == sum(isinstance(m, Int8Linear) for m in model.modules()) > 0
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert isinstance(model.get_output_embeddings(), Int8Linear)
    assert model.config.tie_word_embeddings is False


@pytest.mark.parametrize(("requested", "cpus", "expected"), [
    (0, 1, 1), (0, 2, 1), (0, 4, 2), (0, 64, 8), (3, 2, 3), (1, 64, 1)])
def test_choose_threads(requested, cpus, expected):
    threads, why = choose_threads(requested, cpus)
    assert threads == expected
    assert why == ("--threads" if requested else f"auto: half of {cpus} CPUs")


@pytest.mark.parametrize(("options", "weights", "threads_from"), [
    ({"threads": 1, "engine": "torch"}, "int8", "--threads"),
    ({"threads": 0, "weights": "float", "engine": "torch"}, "float32", "auto: half of"),
])
async def test_info_names_the_engine_its_weights_and_threads(make_app, options, weights, threads_from):
    app = make_app(**options)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        info = (await http.get("/info")).json()
        r = await http.post("/generate", json={"inputs": "x = 1", "parameters": {"max_new_tokens": 2}})
    assert r.status_code == 200
    assert info["engine"] == "torch"
    assert info["engine_weights"] == weights
    assert info["engine_threads"] == torch.get_num_threads() >= 1
    assert info["engine_threads_from"].startswith(threads_from)
    assert info["max_input_tokens"] > 0 and "fim_format" in info  # the fields /info always had stay
