"""A checkpoint's `state.json` is the training loop's `TrainState`: the format stays the one written before the
dataclass (same keys, unversioned), and a file from before `--init-adapter` and profiles (no
`init_adapter_sha256`, no `best_dev`) is still read and resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import ModelError
from finetune import checkpoint as ckpt
from finetune import runlog
from finetune.config import TrainConfig
from finetune.train import train
from tests.finetune.conftest import FAST

# state.json as the first checkpoints wrote it (before --init-adapter and completion profiles).
OLD_STATE = """{"step": 2, "planned_steps": 4, "elapsed_s": 1.25, "tokens": 2048, "best_dev_loss": 50.0,
 "best_step": 2, "budget_fixed": false}"""

# state.json as written now, after a dev evaluation (`best_dev` appears only then).
CURRENT_STATE = """{"step": 16, "planned_steps": 24, "elapsed_s": 12.5, "tokens": 16384, "best_dev_loss": 4.1,
 "best_step": 8, "budget_fixed": true, "init_adapter_sha256": "ab12",
 "best_dev": {"dev_loss_psm": 4.0, "dev_loss_spm": 4.2, "dev_loss": 4.1}}"""

# ... and before one (or in a run without a dev split).
CURRENT_STATE_NO_DEV = """{"step": 3, "planned_steps": 24, "elapsed_s": 2.0, "tokens": 3072, "best_dev_loss": null,
 "best_step": null, "budget_fixed": false, "init_adapter_sha256": null}"""


def _write_state(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ckpt.STATE_FILE).write_text(text, encoding="utf-8")
    return directory


def test_an_old_state_file_is_read_with_defaults_for_the_newer_fields(tmp_path):
    state = ckpt.read_state(_write_state(tmp_path / "step-00000002", OLD_STATE))
    assert state == ckpt.TrainState(planned_steps=4, step=2, elapsed_s=1.25, tokens=2048, best_dev_loss=50.0,
                                    best_step=2, budget_fixed=False)
    assert state.init_adapter_sha256 is None and state.best_dev == {}


@pytest.mark.parametrize("text", [CURRENT_STATE, CURRENT_STATE_NO_DEV], ids=["after-dev", "no-dev-yet"])
def test_the_format_is_unchanged(tmp_path, text):
    written = json.loads(text)
    state = ckpt.read_state(_write_state(tmp_path, text))
    assert state.to_dict() == written  # the same keys and values (write_json_atomic sorts the keys on disk)


def test_an_unreadable_state_names_the_checkpoint(tmp_path):
    broken = _write_state(tmp_path / "step-00000002", '{"planned_steps": 4}')  # no step
    with pytest.raises(ModelError, match="step-00000002.*unreadable"):
        ckpt.read_state(broken)


def test_a_checkpoint_with_an_old_state_file_resumes(tiny_model_dir, tiny_dataset, tmp_path):
    cfg = TrainConfig(**dict(FAST, max_steps=4, eval_every=2, save_every=2, keep_checkpoints=4))
    straight = train(tiny_model_dir, tiny_dataset, tmp_path / "straight", cfg, progress=False)
    # What a kill after step 2 of a run from before TrainState leaves: its step-2 checkpoint, no final adapter.
    cut = tmp_path / "cut"
    shutil.copytree(straight, cut)
    shutil.rmtree(cut / "checkpoints" / "step-00000004")
    for name in ("inhouse.json", "adapter_model.safetensors", "adapter_config.json"):
        (cut / name).unlink()
    runlog.truncate(cut / "metrics.jsonl", 2)
    _write_state(cut / "checkpoints" / "step-00000002", OLD_STATE)

    train(tiny_model_dir, tiny_dataset, cut, cfg, resume=True, progress=False)
    records = {path: [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
               for path in (cut, straight)}
    a, b = ({r["step"]: r for r in records[p] if "loss" in r} for p in (cut, straight))
    assert sorted(a) == [1, 2, 3, 4] and all(abs(a[s]["loss"] - b[s]["loss"]) < 1e-3 for s in (3, 4))
    assert a[4]["tokens"] == b[4]["tokens"] == 4096  # counted on from the old file's 2048
    # The step-4 evaluation beats the old file's best (50.0): it is chosen, and recorded in the current format.
    end = records[cut][-1]
    assert end["event"] == "end" and end["chosen_step"] == 4
    resumed = ckpt.read_state(ckpt.checkpoint_dir(cut, 4))
    assert resumed.step == 4 and resumed.best_step == 4 and resumed.best_dev["dev_loss"] == resumed.best_dev_loss
    assert resumed.init_adapter_sha256 is None
    assert set(json.loads((ckpt.checkpoint_dir(cut, 4) / ckpt.STATE_FILE).read_text())) == set(
        json.loads(CURRENT_STATE))
