"""Shared fixtures: the tiny random model (built once per session, offline) and skips for GPU tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SMOLLM2_DIR = Path(os.environ.get("INHOUSE_SMOLLM2_DIR", "models/smollm2"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama model with a tokenizer trained locally; FIM format `starcoder`."""
    from finetune.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def slower_model_dir(tmp_path_factory) -> Path:
    """A random model slow enough that 1,500 new tokens outlast a 0.5 s timeout (the tiny one decodes thousands
    of tokens a second on llama.cpp): 8 layers of 512, still F32 under the engine's auto rule."""
    from finetune.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("slower") / "model", hidden_size=512, layers=8)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer as a plain `tokenizers.Tokenizer` (what the language server uses)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2 checkpoint made by `inhouse model demo`; tests that need it skip without it."""
    if not (SMOLLM2_DIR / "config.json").is_file():
        pytest.skip(f"no SmolLM2 checkpoint at {SMOLLM2_DIR} (run `inhouse model demo -o {SMOLLM2_DIR}`)")
    return SMOLLM2_DIR
