"""Hugging Face Llama checkpoints and peft LoRA adapters written as GGUF files for llama.cpp (no torch).

`export_model` and `export_lora` follow llama.cpp's convert_hf_to_gguf.py (LlamaModel) and convert_lora_to_gguf.py:
the same tensor names, Q/K row permutation and metadata keys; tensors come from `server/safetensors_numpy.py`.
The llama.cpp engine calls the cached forms in `server/gguf_cache.py` (`model_gguf`, `adapter_gguf`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from server import iq4nl
from server.config import GGUF_TYPES
from server.safetensors_numpy import read_safetensors

log = logging.getLogger(__name__)

ARCHITECTURE = "LlamaForCausalLM"

# HF Llama tensor (after `model.layers.N.`) -> GGUF tensor (after `blk.N.`), as gguf-py's tensor_mapping.py has it.
_LAYER_TENSORS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_GLOBAL_TENSORS = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_LORA_RE = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)"
                      r"\.lora_([AB])\.weight$")

# ---- reading ------------------------------------------------------------------------------------------------------

def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{str(path)!r} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{str(path)!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{str(path)!r} does not hold a JSON object")
    return data


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        return [model_dir / s for s in shards]
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise ModelError(f"{str(model_dir)!r} has no model.safetensors (torch .bin checkpoints are not read)")
    return [single]


def source_files(model_dir: Path) -> list[Path]:
    """The files an export of `model_dir` reads (what a cache fingerprint must cover)."""
    names = ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json"]
    return [p for p in (model_dir / n for n in names) if p.is_file()] + _weight_files(model_dir)


# ---- model hyper-parameters ---------------------------------------------------------------------------------------

def llama_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a Llama checkpoint; ModelError naming the architecture for anything else."""
    config = read_json(Path(model_dir) / "config.json")
    archs = config.get("architectures") or [config.get("model_type", "?")]
    if list(archs) != [ARCHITECTURE]:
        raise ModelError(f"{str(model_dir)!r} is a {', '.join(map(str, archs))} model; the GGUF export "
                         f"supports {ARCHITECTURE} only")
    rope = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise ModelError(f"{str(model_dir)!r} uses rope scaling {rope!r}; the GGUF export supports default rope only")
    return config


def _rope_theta(config: Mapping[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    return float(config.get("rope_theta", params.get("rope_theta", 10000.0)))


def _head_dim(config: Mapping[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotate-half row order -> llama.cpp's interleaved pairs (LlamaModel.permute, per head)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _permute_heads(config: Mapping[str, Any], hf_name: str) -> int | None:
    if hf_name == "self_attn.q_proj":
        return int(config["num_attention_heads"])
    if hf_name == "self_attn.k_proj":
        return int(config.get("num_key_value_heads") or config["num_attention_heads"])
    return None


# ---- tokenizer ----------------------------------------------------------------------------------------------------

def _token_id(tokenizer: Mapping[str, Any], spec: Any) -> int | None:
    content = spec.get("content") if isinstance(spec, dict) else spec
    if not isinstance(content, str):
        return None
    for added in tokenizer.get("added_tokens", []):
        if added["content"] == content:
            return int(added["id"])
    found = tokenizer["model"]["vocab"].get(content)
    return None if found is None else int(found)


def _pre_tokenizer_name(pre: Mapping[str, Any] | None) -> str:
    # llama.cpp picks its pre-tokenizer regex by this name; these two are the same regexes as the HF ones. The
    # engine sends token ids, so the name only matters to llama.cpp's own tokenizing (and "gpt-2" also cleans up
    # spaces when llama.cpp detokenizes); "default" keeps any other byte-level BPE file loadable.
    def byte_level(p: Mapping[str, Any]) -> bool:
        return p.get("type") == "ByteLevel" and bool(p.get("use_regex", True))

    if pre and byte_level(pre):
        return "gpt-2"
    parts = list(pre.get("pretokenizers", [])) if pre and pre.get("type") == "Sequence" else []
    if (len(parts) == 2 and parts[0].get("type") == "Digits" and parts[0].get("individual_digits")
            and byte_level(parts[1])):
        return "smollm"  # digits one by one, then GPT-2's regex (SmolLM2 as published)
    log.warning("pre-tokenizer %r has no llama.cpp name; writing 'default'", pre and pre.get("type"))
    return "default"


def _add_tokenizer(writer: Any, model_dir: Path, config: Mapping[str, Any]) -> None:
    import gguf

    tok = read_json(model_dir / "tokenizer.json")
    if tok.get("model", {}).get("type") != "BPE":
        raise ModelError(f"{str(model_dir)!r}: tokenizer model {tok.get('model', {}).get('type')!r} is not "
                         "supported (byte-level BPE only)")
    tok_config_path = model_dir / "tokenizer_config.json"
    tok_config = read_json(tok_config_path) if tok_config_path.is_file() else {}
    by_id: dict[int, str] = {int(i): t for t, i in tok["model"]["vocab"].items()}
    special: set[int] = set()
    for added in tok.get("added_tokens", []):
        by_id[int(added["id"])] = added["content"]
        if added.get("special"):
            special.add(int(added["id"]))
    vocab_size = int(config.get("vocab_size", len(by_id)))
    if by_id and max(by_id) >= vocab_size:
        raise ModelError(f"{str(model_dir)!r}: tokenizer has id {max(by_id)}, config.json vocab_size is {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):  # ids the tokenizer lacks are padding rows of the embedding, as convert does
        text = by_id.get(i)
        tokens.append(f"[PAD{i}]" if text is None else text)
        types.append(gguf.TokenType.UNUSED if text is None else
                     gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(tok.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    # convert's SpecialVocab: tokenizer_config.json's tokens first, config.json's ids where those are absent.
    for kind in ("bos", "eos", "unk", "pad"):
        tid = _token_id(tok, tok_config.get(f"{kind}_token"))
        if tid is None and isinstance(config.get(f"{kind}_token_id"), int):
            tid = int(config[f"{kind}_token_id"])
        if tid is not None:
            getattr(writer, f"add_{kind}_token_id")(tid)
    writer.add_add_bos_token(bool(tok_config.get("add_bos_token", False)))
    writer.add_add_eos_token(bool(tok_config.get("add_eos_token", False)))


# ---- writing ------------------------------------------------------------------------------------------------------

def _encode(values: np.ndarray, qtype: str) -> tuple[np.ndarray, Any]:
    """(data, raw_dtype) for GGUFWriter.add_tensor: 2-D matrices in `qtype` when rows fit its blocks, else F32."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import quantize

    if values.ndim != 2 or qtype == "F32":
        return np.ascontiguousarray(values, dtype=np.float32), None
    if qtype == "F16":
        return np.ascontiguousarray(values, dtype=np.float16), None
    kind = GGMLQuantizationType[qtype]
    if values.shape[1] % GGML_QUANT_SIZES[kind][0]:
        return np.ascontiguousarray(values, dtype=np.float32), None
    if kind == GGMLQuantizationType.IQ4_NL:
        return iq4nl.quantize(values), kind
    return quantize(np.ascontiguousarray(values, dtype=np.float32), kind), kind


def _write_atomic(out: Path, arch: str, fill: Any) -> Path:
    """Write a GGUF through `fill(writer)` under a temporary name beside `out`, then rename it into place."""
    import gguf

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        writer = gguf.GGUFWriter(tmp, arch=arch)
        fill(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _gguf_name(hf: str, kind: str) -> str | None:
    """GGUF name of an HF Llama tensor ("model.layers.3.mlp.up_proj.weight" -> "blk.3.ffn_up.weight")."""
    if m := _LAYER_RE.match(hf):
        short = _LAYER_TENSORS.get(m.group(2))
        return None if short is None else f"blk.{m.group(1)}.{short}.{m.group(3)}"
    stem, _, suffix = hf.rpartition(".")
    short = _GLOBAL_TENSORS.get(stem)
    return None if short is None or suffix != kind else f"{short}.{suffix}"


# The output head (and, tied, the token embeddings that serve as it) decides every token's logits: llama.cpp's
# own quantizer keeps it at 6-8 bits in a 4-bit file, and so does the Q4_1 GGUF shipped with SmolLM2 (Q8_0).
_HEAD = ("output.weight", "token_embd.weight")
_HEAD_TYPE = {"Q4_0": "Q8_0", "Q4_1": "Q8_0", "IQ4_NL": "Q8_0"}


def _tensor_qtype(name: str, qtype: str) -> str:
    return _HEAD_TYPE.get(qtype, qtype) if name in _HEAD else qtype


def export_model(model_dir: str | Path, out: str | Path, qtype: str = "Q8_0") -> Path:
    """Write the HF Llama checkpoint `model_dir` as a GGUF file `out` (arch "llama"), 2-D weights in `qtype`."""
    import gguf

    model_dir = Path(model_dir)
    if qtype not in GGUF_TYPES:
        raise ModelError(f"`qtype` must be one of {', '.join(GGUF_TYPES)}, got {qtype!r}")
    config = llama_config(model_dir)
    tied = bool(config.get("tie_word_embeddings", False))
    files = _weight_files(model_dir)

    def fill(writer: Any) -> None:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(model_dir.name)
        writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_block_count(int(config["num_hidden_layers"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
        writer.add_rope_freq_base(_rope_theta(config))
        writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
        writer.add_key_length(_head_dim(config))
        writer.add_value_length(_head_dim(config))
        writer.add_vocab_size(int(config["vocab_size"]))
        writer.add_rope_dimension_count(_head_dim(config))
        writer.add_file_type(int(gguf.LlamaFileType.ALL_F32 if qtype == "F32" else
                                 gguf.LlamaFileType[f"MOSTLY_{qtype}"]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_tokenizer(writer, model_dir, config)
        seen: set[str] = set()
        for path in files:
            for hf, values in read_safetensors(path):
                if hf.endswith("rotary_emb.inv_freq") or (tied and hf == "lm_head.weight"):
                    continue
                name = _gguf_name(hf, "weight")
                if name is None:
                    raise ModelError(f"{str(path)!r}: tensor {hf!r} has no GGUF counterpart in a Llama model")
                m = _LAYER_RE.match(hf)
                heads = _permute_heads(config, m.group(2)) if m else None
                if heads is not None:
                    values = permute_qk(values, heads)
                data, raw = _encode(values, _tensor_qtype(name, qtype))
                writer.add_tensor(name, data, raw_dtype=raw)
                seen.add(name)
        if "token_embd.weight" not in seen:
            raise ModelError(f"{str(model_dir)!r} has no model.embed_tokens.weight")

    return _write_atomic(Path(out), "llama", fill)


# ---- LoRA adapters ------------------------------------------------------------------------------------------------

def _projection_shape(config: Mapping[str, Any], module: str) -> tuple[int, int]:
    """(out_features, in_features) of a Llama projection ("self_attn.k_proj", "mlp.down_proj", ...)."""
    hidden, inter, head = int(config["hidden_size"]), int(config["intermediate_size"]), _head_dim(config)
    heads = int(config["num_attention_heads"])
    kv = int(config.get("num_key_value_heads") or heads)
    return {"self_attn.q_proj": (heads * head, hidden), "self_attn.k_proj": (kv * head, hidden),
            "self_attn.v_proj": (kv * head, hidden), "self_attn.o_proj": (hidden, heads * head),
            "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}[module]


def _check_lora_config(adapter_dir: Path, cfg: Mapping[str, Any]) -> None:
    # llama.cpp applies W + scale * (alpha / rank) * B @ A with one alpha per file: what plain LoRA is.
    unsupported = {
        "peft_type": cfg.get("peft_type", "LORA") != "LORA",
        "use_dora": bool(cfg.get("use_dora")),
        "use_rslora": bool(cfg.get("use_rslora")),
        "modules_to_save": bool(cfg.get("modules_to_save")),
        "alpha_pattern": bool(cfg.get("alpha_pattern")),
        "lora_bias": bool(cfg.get("lora_bias")),
    }
    for key, bad in unsupported.items():
        if bad:
            raise ModelError(f"{str(adapter_dir)!r}: adapter_config.json `{key}` = {cfg.get(key)!r} cannot be "
                             "exported to a llama.cpp LoRA (plain LoRA on q/k/v/o/gate/up/down projections only)")


def _lora_pairs(adapter_dir: Path, config: Mapping[str, Any], model_dir: Path,
                base_name: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(GGUF base tensor name, A, B) for each LoRA'd projection, B's rows permuted for q/k as the model's are."""
    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for name, values in read_safetensors(adapter_dir / "adapter_model.safetensors"):
        m = _LORA_RE.match(name)
        if m is None:
            module = re.sub(r"\.(lora_[AB]|lora_embedding_[AB]|lora_magnitude_vector)(\.\w+)?$|\.weight$", "",
                            name.removeprefix("base_model.model."))
            raise ModelError(f"{str(adapter_dir)!r}: LoRA tensor {name!r} (module {module!r}) cannot be mapped to "
                             "a llama.cpp Llama tensor; only q/k/v/o/gate/up/down projections can")
        pairs.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = values
    if not pairs:
        raise ModelError(f"{str(adapter_dir)!r}: adapter_model.safetensors holds no LoRA tensors")
    for (layer, module), ab in sorted(pairs.items()):
        where = f"layer {layer} {module}"
        if set(ab) != {"A", "B"}:
            raise ModelError(f"{str(adapter_dir)!r}: {where} has lora_{'A' if 'A' not in ab else 'B'} missing")
        a, b = ab["A"], ab["B"]
        out_f, in_f = _projection_shape(config, module)
        if (layer >= int(config["num_hidden_layers"]) or a.ndim != 2 or b.ndim != 2 or a.shape[1] != in_f
                or b.shape[0] != out_f or a.shape[0] != b.shape[1]):
            raise ModelError(f"adapter {str(adapter_dir)!r} (base_model {base_name!r}) does not fit model "
                             f"{str(model_dir)!r}: {where} has A {a.shape}, B {b.shape}; the model's weight is "
                             f"({out_f}, {in_f}) with {config['num_hidden_layers']} layers")
        heads = _permute_heads(config, module)
        if heads is not None:  # LoraTorchTensor's reshape/swapaxes touch B only: A's rows are the rank
            b = permute_qk(b, heads)
        yield f"blk.{layer}.{_LAYER_TENSORS[module]}.weight", a, b


def export_lora(adapter_dir: str | Path, out: str | Path, model_dir: str | Path) -> Path:
    """Write the peft LoRA `adapter_dir` (trained on the Llama model `model_dir`) as a llama.cpp LoRA GGUF."""
    import gguf

    adapter_dir, model_dir = Path(adapter_dir), Path(model_dir)
    cfg = read_json(adapter_dir / "adapter_config.json")
    _check_lora_config(adapter_dir, cfg)
    config = llama_config(model_dir)
    alpha = float(cfg.get("lora_alpha", cfg.get("r", 8)))
    pairs = list(_lora_pairs(adapter_dir, config, model_dir, str(cfg.get("base_model_name_or_path", "?"))))

    def fill(writer: Any) -> None:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(adapter_dir.name)
        for name, a, b in pairs:
            writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=np.float32))

    return _write_atomic(Path(out), "llama", fill)
