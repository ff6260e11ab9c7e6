"""Two data-parallel processes on CPU (gloo, torchrun): each reads its own share and both end identical."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from finetune import runlog


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_ranks_agree(tiny_model_dir, tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "app.cli", "train", "--base", str(tiny_model_dir), "--data",
           str(tiny_dataset), "-o", str(out), "--max-steps", "4", "--batch-size", "2", "--lr", "3e-3",
           "--eval-every", "2", "--save-every", "2", "--threads", "1", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = runlog.read_train_config(out)
    assert cfg["processes"] == 2
    hashes = cfg["rank_weight_hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in recs if r.get("event") == "start")
    assert start["processes"] == 2
    steps = [r for r in recs if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]  # only the main process logs
    assert steps[0]["tokens"] == 2 * 2 * 256  # both ranks' batches counted
    assert json.loads((out / "inhouse.json").read_text())["kind"] == "adapter"
