"""`inhouse train --init-adapter`: continued training from an existing adapter on the tiny model: its LoRA config
and weights are the start, a conflicting LoRA setting or another base is refused, and the time budget and
--resume work with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.artifacts import file_sha256, read_info
from core.errors import ConfigError, ModelError
from finetune import checkpoint as ckpt
from finetune import runlog
from finetune.config import TrainConfig
from finetune.train import train
from tests.finetune.conftest import FAST

SHORT = dict(FAST, max_steps=4, eval_every=2, save_every=2, keep_checkpoints=4)


def _records(adapter: Path) -> list[dict]:
    return [json.loads(line) for line in (adapter / "metrics.jsonl").read_text().splitlines()]


def _weights(adapter: Path) -> dict:
    return ckpt.read_adapter_weights(adapter)


@pytest.fixture(scope="module")
def small_adapter(tmp_path_factory, tiny_model_dir, tiny_dataset) -> Path:
    """An adapter with a LoRA config other than the defaults (r=4, alpha=8, attention only), 8 steps."""
    out = tmp_path_factory.mktemp("init") / "small"
    cfg = TrainConfig(**dict(FAST, max_steps=8, eval_every=4, save_every=0, lr=1e-2), lora_r=4, lora_alpha=8,
                      target_modules=("q_proj", "v_proj"))
    return train(tiny_model_dir, tiny_dataset, out, cfg, progress=False)


def test_continued_training_starts_from_the_adapter_and_records_it(tiny_model_dir, tiny_dataset, small_adapter,
                                                                   tmp_path):
    # A learning rate too small to move anything: the result must be the init adapter's own weights.
    out = train(tiny_model_dir, tiny_dataset, tmp_path / "still", TrainConfig(**dict(SHORT, lr=1e-12)),
                progress=False, init_adapter=small_adapter)
    before, after = _weights(small_adapter), _weights(out)
    assert set(before) == set(after)
    assert all((before[k] - after[k]).abs().max() < 1e-6 for k in before)
    # Its LoRA config, not the defaults; the run's resolved config says so.
    peft_cfg = json.loads((out / "adapter_config.json").read_text())
    assert peft_cfg["r"] == 4 and peft_cfg["lora_alpha"] == 8 and sorted(peft_cfg["target_modules"]) == [
        "q_proj", "v_proj"]
    resolved = runlog.read_train_config(out)
    assert resolved["train"]["lora_r"] == 4 and resolved["train"]["target_modules"] == ["q_proj", "v_proj"]
    record = {"path": str(small_adapter.resolve()), "sha256": file_sha256(small_adapter /
                                                                          "adapter_model.safetensors")}
    info = read_info(out)
    assert {k: info["init_adapter"][k] for k in record} == record
    assert {k: resolved["init_adapter"][k] for k in record} == record
    assert info["profile"]["fim_format"] == "starcoder" and info["chosen_step"] in {2, 4}
    # The first step's loss is the trained adapter's, far below a fresh LoRA's (the random model's).
    fresh = train(tiny_model_dir, tiny_dataset, tmp_path / "fresh", TrainConfig(**dict(SHORT, max_steps=1,
                                                                                      eval_every=0)),
                  progress=False)
    first = [r["loss"] for r in _records(out) if "loss" in r][0]
    assert first < [r["loss"] for r in _records(fresh) if "loss" in r][0] - 0.1
    assert read_info(fresh)["init_adapter"] is None


def test_continued_training_learns_further(tiny_model_dir, tiny_dataset, small_adapter, tmp_path):
    out = train(tiny_model_dir, tiny_dataset, tmp_path / "more", TrainConfig(**SHORT), progress=False,
                init_adapter=small_adapter)
    before, after = _weights(small_adapter), _weights(out)
    assert any((before[k] - after[k]).abs().max() > 1e-4 for k in before)  # trainable, and trained
    start_dev = [r["dev_loss"] for r in _records(small_adapter) if r.get("event") == "dev"][-1]
    assert read_info(out)["dev_loss"] < start_dev + 0.05  # did not start over from a random LoRA


def test_a_conflicting_lora_setting_names_both_values(tiny_model_dir, tiny_dataset, small_adapter, tmp_path):
    with pytest.raises(ConfigError, match=r"`lora_r` is 8 but --init-adapter .* was trained with r = 4"):
        train(tiny_model_dir, tiny_dataset, tmp_path / "a", TrainConfig(**SHORT, lora_r=8), progress=False,
              init_adapter=small_adapter)
    # A default value given explicitly (a flag) is a conflict too; left unset it is the adapter's.
    with pytest.raises(ConfigError, match=r"`lora_alpha` is 32 but .* lora_alpha = 8"):
        train(tiny_model_dir, tiny_dataset, tmp_path / "b", TrainConfig(**SHORT), progress=False,
              init_adapter=small_adapter, lora_given={"lora_alpha"})
    with pytest.raises(ConfigError, match=r"`target_modules` is k_proj but .* target_modules = q_proj,v_proj"):
        train(tiny_model_dir, tiny_dataset, tmp_path / "c", TrainConfig(**SHORT, target_modules=("k_proj",)),
              progress=False, init_adapter=small_adapter)
    with pytest.raises(ConfigError, match="inside --out"):
        train(tiny_model_dir, tiny_dataset, small_adapter, TrainConfig(**SHORT), progress=False, overwrite=True,
              init_adapter=small_adapter)
    assert (small_adapter / "adapter_model.safetensors").is_file()


def test_an_adapter_of_another_base_is_refused(tiny_model_dir, tiny_dataset, small_adapter, tmp_path):
    from finetune.models import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=1)  # same shapes, other weights: the recorded base decides
    with pytest.raises(ModelError, match="trained for another base model"):
        train(other, tiny_dataset, tmp_path / "a", TrainConfig(**SHORT), progress=False,
              init_adapter=small_adapter)
    copy = tmp_path / "copy"  # a copy of the same base is the same base
    shutil.copytree(tiny_model_dir, copy)
    train(copy, tiny_dataset, tmp_path / "b", TrainConfig(**dict(SHORT, max_steps=1, eval_every=0)),
          progress=False, init_adapter=small_adapter)
    # The recorded base is gone: the shapes decide, and a wider model does not fit.
    wide = build_tiny_model(tmp_path / "wide", seed=0, hidden_size=64)
    moved = tmp_path / "moved"
    shutil.copytree(small_adapter, moved, ignore=shutil.ignore_patterns("checkpoints"))
    info = read_info(moved)
    (moved / "inhouse.json").write_text(json.dumps(dict(info, base_model=str(tmp_path / "gone"))))
    cfg = json.loads((moved / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(json.dumps(dict(cfg, base_model_name_or_path=str(tmp_path / "gone"))))
    with pytest.raises(ModelError, match=r"tensors do not fit, e.g. .*q_proj \(lora_A has 128 inputs, the base 64\)"):
        train(wide, tiny_dataset, tmp_path / "c", TrainConfig(**SHORT), progress=False, init_adapter=moved)


def test_time_budget_and_resume_with_an_init_adapter(tiny_model_dir, tiny_dataset, small_adapter, tmp_path):
    budget = TrainConfig(**dict(SHORT, max_steps=10_000, eval_every=0, save_every=0), max_minutes=0.03)
    out = train(tiny_model_dir, tiny_dataset, tmp_path / "budget", budget, progress=False,
                init_adapter=small_adapter)
    assert 1 <= read_info(out)["steps"] < 10_000 and read_info(out)["init_adapter"]["sha256"]

    cfg = TrainConfig(**dict(SHORT, eval_every=0))
    straight = train(tiny_model_dir, tiny_dataset, tmp_path / "straight", cfg, progress=False,
                     init_adapter=small_adapter)
    # What a kill after step 2 leaves: the step-2 checkpoint and no final adapter.
    cut = tmp_path / "cut"
    shutil.copytree(straight, cut)
    shutil.rmtree(cut / "checkpoints" / "step-00000004")
    for name in ("inhouse.json", "adapter_model.safetensors", "adapter_config.json"):
        (cut / name).unlink()
    runlog.truncate(cut / "metrics.jsonl", 2)
    with pytest.raises(ConfigError, match="give the same --init-adapter"):
        train(tiny_model_dir, tiny_dataset, cut, cfg, resume=True, progress=False)
    train(tiny_model_dir, tiny_dataset, cut, cfg, resume=True, progress=False, init_adapter=small_adapter)
    a = {r["step"]: r["loss"] for r in _records(cut) if "loss" in r}
    b = {r["step"]: r["loss"] for r in _records(straight) if "loss" in r}
    assert sorted(a) == [1, 2, 3, 4] and all(abs(a[s] - b[s]) < 1e-3 for s in (3, 4))
    assert read_info(cut)["init_adapter"] == read_info(straight)["init_adapter"]


def test_cli_init_adapter_and_conflicting_flag(tiny_model_dir, tiny_dataset, small_adapter, tmp_path, capsys):
    from app.cli import main

    code = main(["train", "--base", str(tiny_model_dir), "--data", str(tiny_dataset), "-o", str(tmp_path / "x"),
                 "--init-adapter", str(small_adapter), "--lora-r", "16", "--max-steps", "1", "--no-progress"])
    assert code == 2 and "`lora_r` is 16 but --init-adapter" in capsys.readouterr().err
