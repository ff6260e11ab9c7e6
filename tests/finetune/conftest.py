"""Fixtures of the finetune tests: a hand-built dataset and one adapter trained on it (both per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.finetune.dataset import make_dataset

# Small and fast on 2 shared cores; lr high so a few steps visibly learn.
FAST = dict(max_steps=24, batch_size=4, seq_len=256, lr=3e-3, eval_every=8, save_every=8, threads=1, log_every=1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "ds", fim_format="starcoder")


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory, tiny_model_dir, tiny_dataset) -> Path:
    from finetune.config import TrainConfig
    from finetune.train import train

    out = tmp_path_factory.mktemp("adapter") / "acme"
    return train(tiny_model_dir, tiny_dataset, out, TrainConfig(**FAST), progress=False,
                 run_metadata={"inhouse_version": "test", "git_sha": "test"})
