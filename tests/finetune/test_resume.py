"""Kill -9 a training run and resume it: it continues from the last complete checkpoint, same data order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from finetune import checkpoint as ckpt
from finetune.config import TrainConfig
from finetune.train import train

ARGS = ["--max-steps", "16", "--batch-size", "2", "--seq-len", "256", "--lr", "3e-3", "--save-every", "3",
        "--eval-every", "0", "--threads", "1", "--no-progress"]


def _train(base, data, out, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "app.cli", "train", "--base", str(base), "--data", str(data), "-o", str(out),
           *ARGS, *extra]
    return subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _steps(out: Path) -> dict[int, dict]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in recs if "loss" in r}


def test_resume_after_kill_continues_with_the_same_data(tiny_model_dir, tiny_dataset, tmp_path):
    killed = tmp_path / "killed"
    proc = _train(tiny_model_dir, tiny_dataset, killed)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = ckpt.list_checkpoints(killed)
        if found and found[-1][0] >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # read only when the run ended too early; an open pipe is an unclosed-file warning
    last = ckpt.list_checkpoints(killed)[-1][0]
    assert 6 <= last < 16
    assert not (killed / "inhouse.json").exists()
    # A half-written checkpoint (what a kill during a save leaves) is never used.
    (killed / "checkpoints" / ".step-00000099.partial").mkdir()
    (killed / "checkpoints" / "step-00000098").mkdir()  # no state.json: incomplete
    assert ckpt.latest_checkpoint(killed).name == f"step-{last:08d}"

    cfg = TrainConfig(max_steps=16, batch_size=2, seq_len=256, lr=3e-3, save_every=3, eval_every=0, threads=1)
    train(tiny_model_dir, tiny_dataset, killed, cfg, resume=True, progress=False)  # what `--resume` runs
    straight = train(tiny_model_dir, tiny_dataset, tmp_path / "straight", cfg, progress=False)

    a, b = _steps(killed), _steps(straight)
    assert sorted(a) == list(range(1, 17)) == sorted(b)  # every step once, the lost ones redone
    assert [a[s]["batch_hash"] for s in a] == [b[s]["batch_hash"] for s in b]
    for s in range(last + 1, 17):  # after the resume: same state, same data, same losses
        assert abs(a[s]["loss"] - b[s]["loss"]) < 1e-3 * max(1.0, abs(b[s]["loss"])), s
    assert json.loads((killed / "inhouse.json").read_text())["steps"] == 16
