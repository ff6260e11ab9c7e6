"""The training config beside an adapter: `inhouse_train_config.json`, and `config.json` in adapters made before."""

from __future__ import annotations

import json

from finetune import runlog


def test_reads_the_training_config_under_its_name_or_the_old_one(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"train": {"lora_r": 8}, "git_sha": "abc"}), encoding="utf-8")
    assert runlog.read_train_config(old)["train"] == {"lora_r": 8}

    new = tmp_path / "new"
    new.mkdir()
    (new / runlog.TRAIN_CONFIG_FILE).write_text(json.dumps({"train": {"lora_r": 16}}), encoding="utf-8")
    (new / "config.json").write_text(json.dumps({"train": {"lora_r": 8}}), encoding="utf-8")
    assert runlog.read_train_config(new)["train"] == {"lora_r": 16}


def test_a_models_config_json_is_not_a_training_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}), encoding="utf-8")
    assert runlog.read_train_config(tmp_path) == {}
    assert runlog.read_train_config(tmp_path / "missing") == {}
