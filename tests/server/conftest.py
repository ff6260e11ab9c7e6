"""Fixtures for the server tests: a tiny LoRA adapter, in-process apps, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.threaded import serve_in_thread


def make_adapter(model_dir: Path, out: Path, seed: int = 1) -> Path:
    """A tiny random peft LoRA adapter for the tiny model (random A and B, so it changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.artifacts import write_info

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(20.0)  # make the adapter's effect large enough to change greedy choices
    peft_model.save_pretrained(out)
    write_info(out, {"kind": "adapter", "fim_format": "starcoder", "base_model": str(model_dir)})
    return out


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads():
    """The server sets torch's thread count for the process; give other test modules theirs back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def adapters_dir(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adapters")
    make_adapter(tiny_model_dir, root / "team-a", seed=1)
    return root


@pytest.fixture
def make_app(tiny_model_dir) -> Iterator[Callable]:
    """create_app(...) for in-process tests; every engine thread is stopped at teardown."""
    from server.app import create_app

    apps = []

    def factory(model_dir: Path | None = None, adapters_dir: Path | None = None, **options):
        options.setdefault("threads", 1)  # the tiny model is fastest on one thread, above all on a busy machine
        app = create_app(model_dir or tiny_model_dir, adapters_dir, **options)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.state.server.engine.close()


@pytest.fixture
def serve(make_app) -> Iterator[Callable]:
    """serve(**create_app options) -> base URL of a real server on 127.0.0.1 (stopped at teardown)."""
    stack = []

    def start(adapters_dir: Path | None = None, **options) -> str:
        cm = serve_in_thread(make_app(adapters_dir=adapters_dir, **options))
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
