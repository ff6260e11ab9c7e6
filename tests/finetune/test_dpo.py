"""`inhouse dpo` on the tiny model: bad preference files are clear errors naming the file and line; a few DPO
steps from a team adapter lower the DPO loss on its pairs, and the output is a complete adapter directory (the
current adapter's profile, method "dpo", the pairs' hash) that the embedded server loads and serves."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import httpx
import pytest

from core.artifacts import read_info, write_info
from core.completion.profile import PROFILE_KEY, CompletionProfile
from core.errors import ConfigError
from finetune.config import DpoConfig
from finetune.dpo import dpo, read_pairs

FIM = "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>"


def _pairs(n: int) -> list[dict[str, str]]:
    return [{"prompt": FIM.format(prefix=f"def add_{i}(a, b):\n    return ", suffix="\n"), "chosen": "a + b",
             "rejected": f"print({i})", "id": f"s{i}", "adapter": "team-a"} for i in range(n)]


@pytest.mark.parametrize("text, message", [
    ("", "holds no pairs"),
    ("\n\n", "holds no pairs"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b"}\nnot json\n', ":2: not a JSON object"),
    ('["p", "a", "b"]\n', ":1: must be a JSON object"),
    ('{"prompt": "p", "chosen": "a"}\n', ":1: `rejected` must be a non-empty string"),
    ('{"prompt": "p", "chosen": "", "rejected": "b"}\n', ":1: `chosen` must be a non-empty string"),
    ('{"prompt": "p", "chosen": "a", "rejected": "a"}\n', ":1: `chosen` and `rejected` are the same text"),
])
def test_bad_preference_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{path}.*{message}" if message.startswith(":") else message) as err:
        read_pairs(path)
    assert str(path) in str(err.value)


def test_missing_preference_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_pairs(tmp_path / "nope.jsonl")


@pytest.fixture(scope="module")
def team_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """A random LoRA adapter of the tiny model with the inhouse.json `inhouse train` writes (a profile)."""
    from tests.server.conftest import make_adapter

    out = make_adapter(tiny_model_dir, tmp_path_factory.mktemp("current") / "team-a", seed=3)
    profile = CompletionProfile(fim_format="starcoder").variant("psm")
    write_info(out, {**read_info(out), "dataset": "corpus-v1", PROFILE_KEY: profile.to_dict()})
    return out


@pytest.mark.timeout(600)
def test_dpo_lowers_the_loss_and_writes_an_adapter_the_server_serves(tiny_model_dir, team_adapter, tmp_path):
    prefs = tmp_path / "pairs.jsonl"
    prefs.write_text("".join(json.dumps(p) + "\n" for p in _pairs(8)))
    out = tmp_path / "adapters" / "team-a-dpo"
    cfg = DpoConfig(beta=0.1, lr=5e-3, batch_size=4, max_steps=4, threads=1)
    assert dpo(tiny_model_dir, team_adapter, prefs, out, cfg, run_metadata={"git_sha": "test"}) == out

    info = read_info(out)
    current = read_info(team_adapter)
    assert info["kind"] == "adapter" and info["method"] == "dpo" and info["steps"] == 4
    assert info[PROFILE_KEY] == current[PROFILE_KEY] and info["fim_format"] == "starcoder"
    assert info["preferences_sha256"] == hashlib.sha256(prefs.read_bytes()).hexdigest()
    assert info["pairs"] == 8 and info["pairs_used"] == 8 and info["init_adapter"] == str(team_adapter)
    assert info["init_adapter_sha256"] == hashlib.sha256(
        (team_adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert info["dpo_loss"] < math.log(2) - 0.01 and info["reward_accuracy"] > 0.5  # lower than where it started
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "inhouse.json",
            "inhouse_dpo_config.json", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary directory left
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any(".ref." in k or ".default." in k for k in keys)  # only the trained adapter

    with pytest.raises(Exception, match="already exists"):
        dpo(tiny_model_dir, team_adapter, prefs, out, cfg)

    from server.app import create_app
    from server.threaded import serve_in_thread

    app = create_app(tiny_model_dir, out.parent, threads=1)
    try:
        with serve_in_thread(app) as url:
            served = httpx.get(f"{url}/info", timeout=30).json()
            assert "team-a-dpo" in served["adapters"]
            r = httpx.post(f"{url}/generate", json={"inputs": _pairs(1)[0]["prompt"], "parameters": {
                "max_new_tokens": 4, "adapter_id": "team-a-dpo"}}, timeout=60)
            assert r.status_code == 200 and isinstance(r.json()["generated_text"], str)
    finally:
        app.state.server.engine.close()


def test_the_command_line_names_the_bad_line(tiny_model_dir, team_adapter, tmp_path, capsys):
    from app import cli

    prefs = tmp_path / "pairs.jsonl"
    prefs.write_text(json.dumps(_pairs(1)[0]) + "\n" + '{"prompt": "p", "chosen": "a"}\n')
    code = cli.main(["dpo", "--base", str(tiny_model_dir), "--adapter", str(team_adapter), "--preferences",
                     str(prefs), "-o", str(tmp_path / "out"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and f"{prefs}:2: `rejected` must be a non-empty string" in err
    assert not (tmp_path / "out").exists()
