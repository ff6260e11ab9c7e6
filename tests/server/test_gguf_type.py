"""`--gguf-type auto` (server/loading.py): F32 for small models, else Q4_0 when exact, else IQ4_NL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

from server.loading import auto_gguf_type, on_q4_0_grid

ROOT = Path(__file__).resolve().parents[2]


def write_layer(path: Path, q_proj: np.ndarray, down_proj: np.ndarray) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_file({"model.layers.0.self_attn.q_proj.weight": q_proj,
               "model.layers.0.mlp.down_proj.weight": down_proj}, str(path / "model.safetensors"))
    return path


def on_grid(w: np.ndarray, kind: str) -> np.ndarray:
    qtype = GGMLQuantizationType[kind]
    return dequantize(quantize(w, qtype), qtype).reshape(w.shape).astype(np.float32)


def test_q4_0_grid_is_recognised_and_other_weights_are_not(tmp_path):
    rng = np.random.default_rng(0)
    q, down = (rng.standard_normal((64, 128)) * 0.02).astype(np.float32), \
        (rng.standard_normal((128, 64)) * 0.02).astype(np.float32)
    assert on_q4_0_grid(write_layer(tmp_path / "q4_0", on_grid(q, "Q4_0"), on_grid(down, "Q4_0")))
    assert not on_q4_0_grid(write_layer(tmp_path / "float", q, down))
    assert not on_q4_0_grid(write_layer(tmp_path / "q4_1", on_grid(q, "Q4_1"), on_grid(down, "Q4_1")))
    assert not on_q4_0_grid(write_layer(tmp_path / "half", on_grid(q, "Q4_0"), down))  # both must be
    assert not on_q4_0_grid(tmp_path / "empty")


def test_auto_types(tiny_model_dir):
    assert auto_gguf_type(tiny_model_dir) == "F32"
    smollm2 = ROOT / "models" / "smollm2"
    if not (smollm2 / "model.safetensors").is_file():
        pytest.skip("SmolLM2 is not in models/smollm2 (make model)")
    assert auto_gguf_type(smollm2) == "IQ4_NL"  # its weights are Q4_1's grid: re-quantized to IQ4_NL
