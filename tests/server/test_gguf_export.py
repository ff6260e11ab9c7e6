"""GGUF export for llama.cpp: the exported model and LoRA give transformers' / peft's greedy token ids in xllamacpp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.errors import ModelError
from server.gguf_cache import adapter_gguf, model_gguf
from server.gguf_export import export_lora, export_model

xllamacpp = pytest.importorskip("xllamacpp")

SMOLLM2 = Path(__file__).resolve().parents[2] / "models" / "smollm2"
MAIN_SMOLLM2 = Path("/work/main/models/smollm2")
PROMPTS = ["def add(a, b):\n    return", "import os\n\nclass Config:\n    def __init__(self", "for i in range(10):"]
NEW_TOKENS = 16
TIE = 0.01  # logits this close count as a tie between llama.cpp and torch
ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The tiny model with init_std 0.1: at the default 0.02 its logits nearly tie and greedy ids are fragile."""
    from finetune.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("gguf") / "model", seed=0, init_std=0.1)


@pytest.fixture(scope="module")
def f32_gguf(model_dir, tmp_path_factory) -> Path:
    return export_model(model_dir, tmp_path_factory.mktemp("gguf-out") / "model-F32.gguf", "F32")


def make_lora(model_dir: Path, out: Path, targets: list[str], seed: int = 3, **options) -> Path:
    """A peft LoRA whose A and B are both random (init_lora_weights=False), so it changes greedy choices."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False, task_type="CAUSAL_LM",
                     **options)
    get_peft_model(base, cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lora_dir(model_dir, tmp_path_factory) -> Path:
    return make_lora(model_dir, tmp_path_factory.mktemp("lora") / "adapter", ALL_TARGETS)


def prompt_ids(model_dir: Path) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return [tok.encode(p).ids for p in PROMPTS]


def special_ids(model_dir: Path) -> list[int]:
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    return [t["id"] for t in tok["added_tokens"] if t["special"]]


def hf_greedy(model, ids: list[int], banned: list[int], n: int = NEW_TOKENS) -> list[int]:
    """Argmax decoding with `banned` ids masked, the same rule the llama.cpp request sets with logit_bias."""
    import torch

    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            logits[banned] = float("-inf")
            seq.append(int(logits.argmax()))
    return seq[len(ids):]


def assert_hf_greedy(model, ids: list[int], got: list[int], banned: list[int], tol: float = TIE) -> None:
    """`got` is the HF model's greedy continuation of `ids`, up to near-ties: at every step the chosen id's logit
    (HF's, given the same prefix) is within `tol` of the best. A wrong tensor layout misses by whole logits; float32
    kernels that sum in another order may flip a tie (a random LoRA makes margins of 0.002)."""
    import torch

    assert len(got) == NEW_TOKENS
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids + got])).logits[0, len(ids) - 1:-1]
    logits[:, banned] = float("-inf")
    best = logits.max(dim=-1).values
    chosen = logits[torch.arange(len(got)), torch.tensor(got)]
    gaps = (best - chosen).tolist()
    assert max(gaps) <= tol, f"step {gaps.index(max(gaps))} chose a token {max(gaps):.4f} below the best: {gaps}"


@contextmanager
def llama_server(gguf: Path, loras: tuple[Path, ...] = ()) -> Iterator[object]:
    """llama.cpp's server in this process, bound to 127.0.0.1 on a free port (CommonParams' defaults)."""
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.n_ctx = 512
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    adapters = []
    for path in loras:
        info = xllamacpp.CommonAdapterLoraInfo()
        info.path = str(path)
        info.scale = 0.0  # the scale a request without a "lora" field gets
        adapters.append(info)
    params.lora_adapters = adapters
    server = xllamacpp.Server(params)
    assert server.listening_address.startswith("http://127.0.0.1:")
    try:
        yield server
    finally:
        del server


def llama_greedy(server, ids: list[int], banned: list[int], lora_scale: float | None = None,
                 n: int = NEW_TOKENS) -> list[int]:
    """Greedy ids through llama.cpp's native /completion route, the one that returns `tokens` (return_tokens).

    xllamacpp's handle_completions is the OpenAI /v1/completions route, which has no token ids (its logprobs skip
    tokens that end inside a UTF-8 character)."""
    import httpx

    body = {"prompt": ids, "n_predict": n, "temperature": 0.0, "top_k": 1, "cache_prompt": False,
            "return_tokens": True, "ignore_eos": True, "logit_bias": [[i, False] for i in banned]}
    if lora_scale is not None:
        body["lora"] = [{"id": 0, "scale": lora_scale}]
    out = httpx.post(server.listening_address + "/completion", json=body, timeout=60).json()
    assert "tokens" in out, out
    return list(out["tokens"])


def test_tiny_f32_gives_transformers_greedy_ids(model_dir, f32_gguf):
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    banned = special_ids(model_dir)
    with llama_server(f32_gguf) as server:
        for ids in prompt_ids(model_dir):
            assert_hf_greedy(hf, ids, llama_greedy(server, ids, banned), banned)


def test_gguf_metadata_and_vocabulary(model_dir, f32_gguf):
    from gguf import GGUFReader, TokenType

    reader = GGUFReader(f32_gguf)
    field = {k: f.contents() for k, f in reader.fields.items()}
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert field["general.architecture"] == "llama"
    assert field["tokenizer.ggml.pre"] == "gpt-2"  # ByteLevel with GPT-2's regex, as the tiny tokenizer has
    assert field["llama.block_count"] == config["num_hidden_layers"]
    assert field["llama.attention.head_count_kv"] == config["num_key_value_heads"]
    assert field["llama.vocab_size"] == config["vocab_size"] == len(field["tokenizer.ggml.tokens"])
    assert field["tokenizer.ggml.eos_token_id"] == config["eos_token_id"]
    for token in tok["added_tokens"]:
        assert field["tokenizer.ggml.tokens"][token["id"]] == token["content"]
        assert field["tokenizer.ggml.token_type"][token["id"]] == TokenType.CONTROL
    assert "output.weight" not in {t.name for t in reader.tensors}  # tied embeddings


@pytest.mark.parametrize("qtype", ["F16", "Q8_0", "Q4_0", "IQ4_NL"])
def test_quantized_exports_load(model_dir, tmp_path, qtype):
    from gguf import GGMLQuantizationType, GGUFReader

    out = export_model(model_dir, tmp_path / f"{qtype}.gguf", qtype)
    types = {t.name: t.tensor_type for t in GGUFReader(out).tensors}
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType[qtype]
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32
    with llama_server(out) as server:
        assert len(llama_greedy(server, prompt_ids(model_dir)[0], special_ids(model_dir), n=4)) == 4


def test_lora_gives_peft_greedy_ids_and_changes_the_base(model_dir, f32_gguf, lora_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora = export_lora(lora_dir, tmp_path / "lora.gguf", model_dir)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                                           lora_dir).eval()
    banned = special_ids(model_dir)
    with llama_server(f32_gguf, loras=(lora,)) as server:
        for ids in prompt_ids(model_dir):
            tuned = llama_greedy(server, ids, banned, lora_scale=1.0)
            base = llama_greedy(server, ids, banned, lora_scale=0.0)
            assert_hf_greedy(peft_model, ids, tuned, banned)
            with peft_model.disable_adapter():
                assert_hf_greedy(peft_model, ids, base, banned)
            assert tuned != base
            assert llama_greedy(server, ids, banned) == base  # no "lora" field: the scale set at load (0)


@pytest.mark.slow
def test_smollm2_q8_0_agrees_with_transformers(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = SMOLLM2 if (SMOLLM2 / "config.json").is_file() else MAIN_SMOLLM2
    if not (src / "model.safetensors").is_file():
        pytest.skip(f"SmolLM2 is not in {SMOLLM2} (make model)")
    out = export_model(src, tmp_path / "smollm2-Q8_0.gguf", "Q8_0")
    ids = AutoTokenizer.from_pretrained(src)("def fibonacci(n):\n    ")["input_ids"]
    hf = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    expected = hf_greedy(hf, ids, [], n=8)
    with llama_server(out) as server:
        got = llama_greedy(server, ids, [], n=8)
    assert got[:4] == expected[:4], (got, expected)


# ---- errors ---------------------------------------------------------------------------------------------------------

def copy_model(model_dir: Path, dst: Path) -> Path:
    shutil.copytree(model_dir, dst, ignore=shutil.ignore_patterns(".inhouse"))
    return dst


def test_bfloat16_safetensors_are_read_as_float32(tmp_path):
    import torch
    from safetensors.torch import save_file

    from server.safetensors_numpy import read_safetensors

    tensors = {"a": torch.randn(3, 5).to(torch.bfloat16), "b": torch.randn(4).to(torch.float16)}
    save_file(tensors, tmp_path / "t.safetensors")
    got = dict(read_safetensors(tmp_path / "t.safetensors"))
    for name, tensor in tensors.items():
        assert got[name].dtype.name == "float32" and (got[name] == tensor.float().numpy()).all()


def test_other_architecture_is_refused_by_name(model_dir, tmp_path):
    other = copy_model(model_dir, tmp_path / "m")
    config = json.loads((other / "config.json").read_text())
    config["architectures"] = ["MistralForCausalLM"]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="MistralForCausalLM"):
        export_model(other, tmp_path / "x.gguf", "F32")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("damage", ["truncated", "not json"])
def test_damaged_safetensors_is_a_model_error(model_dir, tmp_path, damage):
    broken = copy_model(model_dir, tmp_path / "m")
    weights = broken / "model.safetensors"
    with weights.open("r+b") as fh:
        if damage == "truncated":
            fh.truncate(weights.stat().st_size // 2)
        else:
            fh.seek(8)
            fh.write(b"\xff" * 16)
    with pytest.raises(ModelError, match="truncated" if damage == "truncated" else "not a readable safetensors"):
        export_model(broken, tmp_path / "x.gguf", "F32")
    assert not (tmp_path / "x.gguf").exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`:UserWarning")  # peft, about merging
@pytest.mark.filterwarnings("ignore:Setting `save_embedding_layers` to `True`:UserWarning")
def test_lora_on_the_embeddings_is_refused_by_module(model_dir, tmp_path):
    adapter = make_lora(model_dir, tmp_path / "a", ["q_proj", "embed_tokens"])
    with pytest.raises(ModelError, match="model.embed_tokens"):
        export_lora(adapter, tmp_path / "x.gguf", model_dir)


@pytest.mark.parametrize("key", ["use_rslora", "use_dora", "modules_to_save"])
def test_lora_options_llama_cpp_cannot_apply_are_refused(lora_dir, model_dir, tmp_path, key):
    adapter = shutil.copytree(lora_dir, tmp_path / "a")
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg[key] = ["lm_head"] if key == "modules_to_save" else True
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=key):
        export_lora(adapter, tmp_path / "x.gguf", model_dir)


def test_lora_for_another_model_names_both(lora_dir, model_dir, tmp_path):
    other = tmp_path / "wider"
    other.mkdir()
    config = json.loads((model_dir / "config.json").read_text())
    config["intermediate_size"] *= 2
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="does not fit model") as err:
        export_lora(lora_dir, tmp_path / "x.gguf", other)
    assert str(lora_dir) in str(err.value) and str(other) in str(err.value)


# ---- cache ----------------------------------------------------------------------------------------------------------

def test_model_cache_reuses_and_rebuilds_when_the_source_changes(model_dir, tmp_path):
    src = copy_model(model_dir, tmp_path / "m")
    first = model_gguf(src, "Q8_0")
    assert first.parent == src / ".inhouse" and first.name.startswith("model-Q8_0-")
    built = first.stat().st_mtime_ns
    assert model_gguf(src, "Q8_0") == first and first.stat().st_mtime_ns == built
    weights = src / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    second = model_gguf(src, "Q8_0")
    assert second != first and second.is_file() and not first.exists()


def test_adapter_cache_reuses(lora_dir, model_dir):
    first = adapter_gguf(lora_dir, model_dir)
    assert first.parent == lora_dir / ".inhouse" and first.name.startswith("lora-")
    assert adapter_gguf(lora_dir, model_dir) == first


def test_unwritable_source_falls_back_to_the_cache_dir(model_dir, tmp_path):
    src = copy_model(model_dir, tmp_path / "m")
    (src / ".inhouse").write_text("")  # the cache folder cannot be made here (as a read-only mount, even for root)
    with pytest.raises(ModelError, match="read-only"):
        model_gguf(src, "F16")
    out = model_gguf(src, "F16", cache_dir=tmp_path / "cache")
    assert out.is_relative_to(tmp_path / "cache") and out.is_file()
    assert model_gguf(src, "F16", cache_dir=tmp_path / "cache") == out


def test_exporter_does_not_import_torch():
    code = "import sys, server.gguf_cache, server.gguf_export; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
