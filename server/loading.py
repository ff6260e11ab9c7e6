"""Loading the base model and tokenizer of a model directory for serving (device and dtype chosen here)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import ModelError

log = logging.getLogger(__name__)

_SMALL_MODEL = 50_000_000  # parameters


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_model(model_dir: str | Path, device: str = "auto", dtype: str = "auto",
               threads: int = 0) -> tuple[Any, Any]:
    """(model in eval mode on its device, tokenizer) from a checkpoint directory.

    `threads` sets torch's CPU threads for the whole process (the server owns its process); 0 keeps torch's
    default, except for test-sized models, which get one thread.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{str(model_dir)!r} is not a model directory (no config.json)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=pick_dtype(dtype, device))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the model in {str(model_dir)!r}: {exc}") from exc
    model.to(device)  # type: ignore[arg-type]  # transformers wraps .to(); mypy reads its self as the argument
    model.eval()
    if not threads and device == "cpu" and model.num_parameters() < _SMALL_MODEL:
        threads = 1  # a test-sized model gains nothing from intra-op threads and loses much on a busy machine
    if threads:
        import torch

        torch.set_num_threads(threads)
    log.info("loaded %s on %s", model_dir, device)
    return model, tokenizer
