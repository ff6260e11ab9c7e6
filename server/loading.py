"""Loading the base model and tokenizer of a model directory for serving (device, weights and threads chosen here).

On a CPU the default engine is llama.cpp (`server/llamacpp.py`, its GGUF type chosen by `auto_gguf_type`); on a
GPU, or with `--engine torch`, torch (int8 weights on a CPU, `server.quantize`). The thread count is chosen so
that a core busy with something else (the editor, a build) cannot stall a suggestion: see `choose_threads`.
Called by `server.state.ServerState.load`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelError
from core.launch import available_cpus

log = logging.getLogger(__name__)

_MAX_AUTO_THREADS = 8


@dataclass(frozen=True)
class EngineChoice:
    """What `/info` reports about the engine: its name, its weights and the threads it runs on (and why)."""

    name: str          # "torch"
    weights: str       # "int8" | "float32" | "bfloat16" | "float16"
    device: str
    threads: int       # CPU threads of the engine (0 on a GPU)
    threads_from: str  # "--threads" or the rule that chose them
    engine_from: str = "--engine"  # "--engine" or the rule that chose the engine
    build: str = ""    # llama.cpp: the instruction sets it was built for, and whether for this CPU


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


def choose_threads(requested: int, cpus: int | None = None) -> tuple[int, str]:
    """(threads, why). An explicit count wins; otherwise half the CPUs this process may use, at least 1.

    Each decoding step waits for its slowest thread: with as many threads as cores, one core taken by the
    editor or a build stalls every step (measured: 2 threads on 2 cores, one busy, were 10x slower than one
    thread). Half the cores leaves room for the rest of the machine.
    """
    if requested > 0:
        return requested, "--threads"
    cpus = cpus or available_cpus()
    return max(1, min(_MAX_AUTO_THREADS, cpus // 2)), f"auto: half of {cpus} CPUs"


def load_model(model_dir: str | Path, device: str = "auto", dtype: str = "auto", threads: int = 0,
               weights: str = "auto", engine_from: str = "--engine") -> tuple[Any, Any, EngineChoice]:
    """(model in eval mode on its device, tokenizer, what was chosen) from a checkpoint directory.

    `weights` "auto" means int8 on CPU and `dtype` on a GPU; "float" keeps `dtype` everywhere. `threads` sets
    torch's CPU threads for the whole process (the server owns its process); 0 chooses (`choose_threads`).
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{str(model_dir)!r} is not a model directory (no config.json)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=pick_dtype(dtype, device))
    except Exception as exc:  # a truncated or corrupt checkpoint raises safetensors', torch's or json's own types
        raise ModelError(f"cannot load the model in {str(model_dir)!r} (corrupt or truncated file?): "
                         f"{type(exc).__name__}: {exc}") from exc
    model.to(device)  # type: ignore[arg-type]  # transformers wraps .to(); mypy reads its self as the argument
    model.eval()
    int8 = weights == "int8" or (weights == "auto" and device == "cpu")
    if int8:
        if device != "cpu":
            raise ModelError(f"`weights` int8 runs on the CPU only, got device {device!r}")
        from server.quantize import quantize_linears

        quantize_linears(model)
    chosen = 0
    threads_from = "GPU"
    if device == "cpu":
        import torch

        chosen, threads_from = choose_threads(threads)
        torch.set_num_threads(chosen)
    choice = EngineChoice(name="torch", weights="int8" if int8 else str(pick_dtype(dtype, device)).split(".")[-1],
                          device=device, threads=chosen, threads_from=threads_from, engine_from=engine_from)
    log.info("loaded %s on %s: %s weights, %d threads (%s)", model_dir, device, choice.weights, chosen, threads_from)
    return model, tokenizer, choice


def model_config(model_dir: Path) -> dict[str, Any]:
    """The model directory's config.json (a ModelError when it is missing or not JSON)."""
    import json

    path = model_dir / "config.json"
    if not path.is_file():
        raise ModelError(f"{str(model_dir)!r} is not a model directory (no config.json)")
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, OSError) as exc:
        raise ModelError(f"{str(path)!r} is not readable JSON: {exc}") from exc


def has_gpu() -> bool:
    """Whether an NVIDIA GPU is visible, without importing torch (its import alone costs ~300 MB and seconds)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists()


def choose_engine(engine: str, device: str, model_dir: Path) -> tuple[str, str]:
    """("llamacpp" | "torch", why). "auto": llama.cpp on a CPU for the Llama architecture, torch otherwise."""
    if engine != "auto":
        return engine, "--engine"
    if device.startswith("cuda") or (device == "auto" and has_gpu()):
        return "torch", "auto: a GPU serves with torch"
    architectures = model_config(model_dir).get("architectures") or []
    if architectures != ["LlamaForCausalLM"]:
        return "torch", f"auto: llama.cpp export supports LlamaForCausalLM, not {architectures}"
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        return "torch", "auto: xllamacpp is not installed"
    return "llamacpp", "auto: a CPU serves with llama.cpp"


def load_tokenizer(model_dir: Path) -> Any:
    """The model's tokenizer without transformers (and so without torch): `server.tokenizer`."""
    from server.tokenizer import FastTokenizer

    return FastTokenizer(model_dir)


# /proc/cpuinfo flag -> the name llama.cpp's system info gives it, for the sets that speed up its CPU kernels
_CPU_SETS = {"avx2": "AVX2", "avx512f": "AVX512", "avx512_vnni": "AVX512_VNNI", "avx_vnni": "AVX_VNNI",
             "avx512_bf16": "AVX512_BF16", "amx_int8": "AMX_INT8"}


def llamacpp_build(system_info: str, cpu_flags: list[str]) -> tuple[str, list[str]]:
    """(what /info says of the llama.cpp build, the instruction sets this CPU has that the build lacks), from
    llama.cpp's system info ("CPU : SSE3 = 1 | AVX2 = 1 | ... | OPENMP = 1 | ...")."""
    built = set(re.findall(r"(\w+) = 1", system_info))
    missing = [name for flag, name in _CPU_SETS.items() if flag in cpu_flags and name not in built]
    sets = ", ".join(name for name in _CPU_SETS.values() if name in built) or "no AVX2"
    threads = "OpenMP" if "OPENMP" in built else "ggml threads"
    return f"{sets}; {threads}; " + (f"lacks this CPU's {', '.join(missing)}" if missing else "all of this CPU's"), \
        missing


SMALL_MODEL_PARAMETERS = 50_000_000


def auto_gguf_type(model_dir: Path) -> str:
    """The GGUF type `--gguf-type auto` writes: F32 for a model under 50 M parameters (the tests' tiny models:
    exact, and small enough that quantizing buys little); else a 4-bit type that llama.cpp's CPU backend repacks
    for its fast matrix kernels: Q4_0 when the weights already sit on its grid (exact), else IQ4_NL.

    Measured (docs/serving.md, SmolLM2, whose weights are its published Q4_1 GGUF's): Q4_1, exact but without
    a repacked kernel, took twice as long for a cold prompt as Q4_0 or IQ4_NL; re-quantized, Q4_0 lost 3.2
    points of edit similarity on the exam's 100 rows, IQ4_NL none (-0.04, interval [-2.8, 2.8])."""
    from server.adapters import safetensors_shapes

    params = sum(i * o for i, o in safetensors_shapes(model_dir, embeddings=True).values())
    if params < SMALL_MODEL_PARAMETERS:
        return "F32"
    return "Q4_0" if on_q4_0_grid(model_dir) else "IQ4_NL"


def on_q4_0_grid(model_dir: Path) -> bool:
    """Whether a Q4_0 quantize/de-quantize round trip of the first layer's projections gives them back exactly
    (a model published as Q4_0: the values already sit on that grid). Reads two tensors, no torch."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize
    from safetensors import safe_open

    wanted = ("layers.0.self_attn.q_proj.weight", "layers.0.mlp.down_proj.weight")
    samples = []
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), "numpy") as f:
            for key in f.keys():  # noqa: SIM118 (not a dict)
                if key.endswith(wanted):
                    samples.append(np.asarray(f.get_tensor(key), dtype=np.float32))
    q4_0 = GGMLQuantizationType.Q4_0
    return bool(samples) and all(
        w.shape[-1] % 32 == 0 and np.array_equal(dequantize(quantize(w, q4_0), q4_0).reshape(w.shape), w)
        for w in samples)
