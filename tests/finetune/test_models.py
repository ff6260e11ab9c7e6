from __future__ import annotations

import json

import pytest

from core.artifacts import read_info


def test_tiny_model_loads_and_generates(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert 100_000 < model.num_parameters() < 10_000_000
    out = model.generate(**tok("def f(x):", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > 1
    assert read_info(tiny_model_dir)["fim_format"] == "starcoder"


def test_refuses_existing_output(tiny_model_dir):
    from core.errors import ModelError
    from finetune.models import build_tiny_model

    with pytest.raises(ModelError, match="already exists"):
        build_tiny_model(tiny_model_dir)


@pytest.mark.slow
def test_smollm2_writes_sensible_python(smollm2_dir):
    from finetune.models import generate_text

    text = generate_text(smollm2_dir, "def fibonacci(n):\n", max_new_tokens=30)
    assert "return" in text and "fibonacci" in text


def test_import_gguf_roundtrip(tmp_path, tiny_model_dir):
    """A GGUF written from the tiny model imports back into a checkpoint that transformers loads."""
    gguf = pytest.importorskip("gguf")
    del gguf
    from finetune.models import import_gguf
    from tests.finetune.gguf_writer import write_llama_gguf

    path = write_llama_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    out = import_gguf(path, tmp_path / "imported", fim_format="starcoder")
    info = json.loads((out / "inhouse.json").read_text())
    assert info["fim_format"] == "starcoder"
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).num_parameters() > 0
