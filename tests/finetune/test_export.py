"""`inhouse export`: the TGI/vLLM layout loads with peft; the merged checkpoint computes what the adapter does."""

from __future__ import annotations

import json

import pytest

from core.artifacts import read_info
from core.errors import ModelError


def _logits(model, tok):
    import torch

    ids = tok("def total_apple(items, scale=3):\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


def test_layout_loads_with_peft_and_prints_commands(trained_adapter, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.export import export_layout

    out = tmp_path / "layout"
    commands = export_layout(trained_adapter, out, name="acme")
    adapter = out / "adapters" / "acme"
    assert "LORA_ADAPTERS=acme=/adapters/acme" in commands
    assert f"--lora-modules acme={adapter.resolve()}" in commands and "--max-lora-rank 16" in commands
    assert (out / "serve.sh").read_text().count("vllm serve") == 1
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir.resolve()) and not cfg.get("modules_to_save")
    assert read_info(adapter)["fim_format"] == "starcoder"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain = _logits(base, tok)
    model = PeftModel.from_pretrained(base, adapter)
    assert (_logits(model, tok) - plain).abs().max() > 1e-3


def test_merged_checkpoint_matches_the_adapter(trained_adapter, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.cli import main

    out = tmp_path / "merged"
    assert main(["export", str(trained_adapter), "--merge", "-o", str(out)]) == 0
    info = read_info(out)
    assert info["kind"] == "model" and info["fim_format"] == "starcoder"
    tok = AutoTokenizer.from_pretrained(out)
    merged = AutoModelForCausalLM.from_pretrained(out)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trained_adapter)
    assert torch.allclose(_logits(merged, tok), _logits(tuned, tok), atol=1e-4)
    assert not any("lora" in k for k in merged.state_dict())


def test_export_refuses_what_it_cannot_serve(tmp_path, trained_adapter):
    from finetune.export import export_layout

    with pytest.raises(ModelError, match="not a trained adapter"):
        export_layout(tmp_path, tmp_path / "x")
    with pytest.raises(ModelError, match="already exists"):
        export_layout(trained_adapter, trained_adapter)
