"""`inhouse export`: an adapter made ready for a server: a merged checkpoint, or a TGI/vLLM LoRA layout.

The layout holds `adapters/NAME/` (peft files pointing at the base, inhouse.json) and `serve.sh` with the
commands that start TGI (`LORA_ADAPTERS=NAME=/path`) and vLLM (`--lora-modules NAME=/path`) on it. Adapters
from `inhouse train` add no tokens and train no embeddings, which both servers require.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
from pathlib import Path

from core.artifacts import atomic_directory, read_info, write_info
from core.errors import ModelError

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _check_adapter(adapter: Path) -> dict:
    if not all((adapter / f).is_file() for f in ADAPTER_FILES):
        raise ModelError(f"{str(adapter)!r} is not a trained adapter (needs {', '.join(ADAPTER_FILES)})")
    cfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if cfg.get("modules_to_save"):
        raise ModelError(f"adapter {str(adapter)!r} trains whole modules ({cfg['modules_to_save']}); "
                         "TGI and vLLM serve only LoRA weights — merge it with --merge instead")
    return cfg


def _base_of(adapter: Path, base: Path | None) -> Path:
    found = base or read_info(adapter).get("base_model")
    if not found or not (Path(found) / "config.json").is_file():
        raise ModelError(f"base model of {str(adapter)!r} not found ({found!r}); pass --base")
    return Path(found).resolve()


def export_merged(adapter: str | Path, out: str | Path, base: str | Path | None = None,
                  overwrite: bool = False) -> Path:
    """Merge the LoRA weights into the base: a full checkpoint any server loads (kind "model")."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(adapter)
    _check_adapter(adapter)
    base_dir = _base_of(adapter, Path(base) if base else None)
    info = read_info(adapter)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_info(tmp, {"kind": "model", "fim_format": info.get("fim_format") or read_info(base_dir).get(
            "fim_format"), "source": f"merged {adapter.resolve()} into {base_dir}",
            "base_model": str(base_dir), "dataset_manifest_sha256": info.get("dataset_manifest_sha256")})
    return Path(out)


def export_layout(adapter: str | Path, out: str | Path, name: str | None = None, base: str | Path | None = None,
                  overwrite: bool = False) -> str:
    """Write the TGI/vLLM layout; returns the commands (also written to serve.sh)."""
    adapter = Path(adapter)
    cfg = _check_adapter(adapter)
    base_dir = _base_of(adapter, Path(base) if base else None)
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "-", adapter.resolve().name)
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        target = tmp / "adapters" / name
        target.mkdir(parents=True)
        for f in (*ADAPTER_FILES, "inhouse.json"):
            if (adapter / f).is_file():
                shutil.copy2(adapter / f, target / f)
        cfg["base_model_name_or_path"] = str(base_dir)
        (target / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        commands = serve_commands(base_dir, out.resolve() / "adapters" / name, name, int(cfg.get("r", 16)))
        (tmp / "serve.sh").write_text("#!/bin/sh\n# Start one of these (written by `inhouse export`).\n"
                                      + commands + "\n", encoding="utf-8")
    return commands


# The TGI release server/deploy/tgi runs (a test keeps the two equal); never `:latest`, which moves under you.
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.4"


def serve_commands(base: Path, adapter: Path, name: str, rank: int) -> str:
    q = shlex.quote
    return "\n".join([
        "# TGI (LoRA adapters from a local path; requests pick it with parameters.adapter_id):",
        f"docker run --gpus all -p 8080:80 -v {q(str(base))}:/base -v {q(str(adapter))}:/adapters/{q(name)} "
        f"-e LORA_ADAPTERS={q(name)}=/adapters/{q(name)} {TGI_IMAGE} --model-id /base",
        "# vLLM (OpenAI-compatible; the adapter is served as the model name):",
        f"vllm serve {q(str(base))} --enable-lora --max-lora-rank {max(rank, 8)} "
        f"--lora-modules {q(name)}={q(str(adapter))}",
        "# inhouse's embedded server:",
        f"inhouse serve --model {q(str(base))} --adapters {q(str(adapter.parent))}",
    ])
