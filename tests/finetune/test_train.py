"""`inhouse train` on the tiny model: it learns, writes a servable adapter, and refuses bad setups."""

from __future__ import annotations

import json

import pytest

from core.artifacts import read_info
from core.errors import ConfigError, CorpusError, ModelError
from finetune import runlog
from finetune.config import DEFAULT_TARGETS, TrainConfig
from tests.finetune.conftest import FAST


def _records(adapter):
    return [json.loads(line) for line in (adapter / "metrics.jsonl").read_text().splitlines()]


def test_short_training_lowers_dev_loss(trained_adapter):
    dev = [r["dev_loss"] for r in _records(trained_adapter) if r.get("event") == "dev"]
    assert len(dev) >= 3
    assert dev[-1] < dev[0] - 0.2
    train = [r["loss"] for r in _records(trained_adapter) if "loss" in r]
    assert sum(train[-4:]) / 4 < sum(train[:4]) / 4


def test_output_directory_holds_everything(trained_adapter, tiny_model_dir, tiny_dataset):
    from finetune.data import manifest_hash

    info = read_info(trained_adapter)
    assert info["kind"] == "adapter" and info["fim_format"] == "starcoder"
    assert info["base_model"] == str(tiny_model_dir.resolve())
    assert info["dataset_manifest_sha256"] == manifest_hash(tiny_dataset)
    assert info["chosen_step"] in {8, 16, 24} and info["dev_loss"] is not None
    assert set(info["objectives"]) == {"psm", "spm", "l2r"}
    # The profile the editor and the exam use: the FIM order that scored best on dev, the base's budgets.
    from core.completion.profile import CompletionProfile

    profile = CompletionProfile.from_dict(info["profile"])
    dev = [json.loads(x) for x in (trained_adapter / "metrics.jsonl").read_text().splitlines()]
    best = next(r for r in dev if r.get("event") == "dev" and r["step"] == info["chosen_step"])
    assert profile.order.value == min(("psm", "spm"), key=lambda o: best[f"dev_loss_{o}"])
    assert profile.max_prompt_tokens == 512 and profile.fim_format == "starcoder"
    assert profile.heal is (profile.order.value != "psm")
    assert not (trained_adapter / "config.json").exists()  # that name marks a model directory to HF tools
    cfg = runlog.read_train_config(trained_adapter)
    assert cfg["train"]["lora_r"] == 16 and cfg["git_sha"] == "test" and cfg["processes"] == 1
    for name in ("adapter_config.json", "adapter_model.safetensors", "loss_curve.png", "metrics.jsonl"):
        assert (trained_adapter / name).is_file(), name
    assert (trained_adapter / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_adapter_loads_back_and_changes_outputs(trained_adapter, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok("def total_apple(items, scale=3):\n    result = 0\n", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        before = base(ids).logits
    tuned = PeftModel.from_pretrained(base, trained_adapter)
    cfg = tuned.peft_config["default"]
    assert cfg.r == 16 and cfg.lora_alpha == 32 and cfg.lora_dropout == 0.05
    assert set(cfg.target_modules) == set(DEFAULT_TARGETS) and not cfg.modules_to_save
    assert tuned.get_input_embeddings().weight.shape[0] == len(tok)  # no new tokens
    with torch.no_grad():
        after = tuned(ids).logits
    assert (after - before).abs().max() > 1e-3


def test_refuses_to_overwrite_or_mix_runs(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path):
    from finetune.train import train

    with pytest.raises(ModelError, match="already holds a trained adapter"):
        train(tiny_model_dir, tiny_dataset, trained_adapter, TrainConfig(**FAST), progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ModelError, match="--resume"):
        train(tiny_model_dir, tiny_dataset, tmp_path / "busy", TrainConfig(**FAST), progress=False)


def test_qlora_without_gpu_says_so(tiny_model_dir, tiny_dataset, tmp_path):
    import torch

    from finetune.train import train

    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    with pytest.raises(ConfigError, match="qlora"):
        train(tiny_model_dir, tiny_dataset, tmp_path / "q", TrainConfig(qlora=True), progress=False)


def test_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match="`loss` must be one of full, middle, got 'prefix'"):
        TrainConfig(loss="prefix")
    with pytest.raises(ConfigError, match="`lora_r` must be > 0"):
        TrainConfig(lora_r=0)


def test_middle_loss_padding_checkpointing_and_time_budget(tiny_model_dir, tiny_dataset, tmp_path):
    """The other options run: middle-only loss, padding instead of packing, gradient checkpointing, and a
    time budget that stops a run planned far longer and still saves the adapter."""
    from finetune.train import train

    cfg = TrainConfig(**dict(FAST, max_steps=10_000, eval_every=0, save_every=0), loss="middle", pack=False,
                      gradient_checkpointing=True, max_minutes=0.05)
    out = train(tiny_model_dir, tiny_dataset, tmp_path / "m", cfg, progress=False)
    info = read_info(out)
    assert 1 <= info["steps"] < 10_000
    end = [r for r in _records(out) if r.get("event") == "end"][0]
    assert end["elapsed_s"] >= 0.05 * 60 or end["step"] == info["steps"]  # stopped by the budget


def test_schedule_warmup_cosine_and_budget_fit():
    from finetune.train import _fit_budget, _lr_at

    cfg = TrainConfig(lr=1e-3, warmup_ratio=0.1, min_lr_ratio=0.1)
    lrs = [_lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warmup over 10 steps
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))  # then only down
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)  # to min_lr_ratio at the planned end
    # 10 s per step, 100 s left of the budget: about 9 more steps (10% kept for evals and checkpoints)
    assert _fit_budget(5, 500.0, [10.0] * 5, 600.0, 1000) == 5 + 9
    assert _fit_budget(5, 500.0, [10.0] * 5, 600.0, 8) == 8  # never past the plan from --epochs / --max-steps
    # The median of the recent steps: one slow step (another job on the CPU) does not shorten the run.
    assert _fit_budget(20, 200.0, [10.0, 10.0, 90.0, 10.0, 10.0], 2000.0, 1000) == 20 + 162


def test_empty_objectives_selection_is_an_error(tiny_model_dir, tiny_dataset, tmp_path):
    from finetune.train import train

    with pytest.raises(CorpusError, match="no training examples"):
        train(tiny_model_dir, tiny_dataset, tmp_path / "e", TrainConfig(**dict(FAST, objectives=("psm",), seq_len=16)),
              progress=False)


@pytest.mark.gpu
def test_qlora_and_bf16_on_gpu(tiny_model_dir, tiny_dataset, tmp_path):
    pytest.importorskip("bitsandbytes")
    from finetune.train import train

    cfg = TrainConfig(**dict(FAST, max_steps=3, eval_every=0, save_every=0), qlora=True, bf16=True,
                      gradient_checkpointing=True)
    out = train(tiny_model_dir, tiny_dataset, tmp_path / "g", cfg, progress=False)
    assert read_info(out)["steps"] == 3
