"""server/iq4nl.py: IQ4_NL blocks as llama.cpp's quantize_iq4_nl writes them (no importance matrix)."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from server import iq4nl

LEVELS = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]


def best_index(x: float) -> int:  # ggml-quants.c: best_index_int8, binary search
    if x <= LEVELS[0]:
        return 0
    if x >= LEVELS[-1]:
        return 15
    low, up = 0, 15
    while up - low > 1:
        mid = (low + up) // 2
        if x < LEVELS[mid]:
            up = mid
        else:
            low = mid
    return up - 1 if x - LEVELS[up - 1] < LEVELS[up] - x else up


def reference_block(xb: np.ndarray) -> bytes:
    """quantize_row_iq4_nl_impl(32, 32, ..., ntry=7) without quant_weights, one block, in float32 as the C code."""
    f = np.float32
    weight = [f(v) * f(v) for v in xb]
    amax, xmax = f(0), f(0)
    for v in xb:
        if abs(v) > amax:
            amax, xmax = abs(v), v
    if amax < 1e-15:
        d = f(0)
    else:
        d = f(-xmax / f(LEVELS[0]))
        inv = f(1) / d
        sumqx = sumq2 = f(0)
        for v, w in zip(xb, weight, strict=True):
            q = f(LEVELS[best_index(f(inv * v))])
            sumqx, sumq2 = f(sumqx + w * q * v), f(sumq2 + w * q * q)
        d = f(sumqx / sumq2) if sumq2 > 0 else f(0)
        best = f(d * sumqx)
        for step in range(-7, 8):
            inv = f(f(step + LEVELS[0]) / xmax)
            sumqx = sumq2 = f(0)
            for v, w in zip(xb, weight, strict=True):
                q = f(LEVELS[best_index(f(inv * v))])
                sumqx, sumq2 = f(sumqx + w * q * v), f(sumq2 + w * q * q)
            if sumq2 > 0 and sumqx * sumqx > best * sumq2:
                d = f(sumqx / sumq2)
                best = f(d * sumqx)
    inv = f(1) / d if d else f(0)
    codes = [best_index(f(inv * v)) for v in xb]
    packed = bytes(codes[j] | (codes[j + 16] << 4) for j in range(16))
    return np.float16(d).tobytes() + packed


def test_blocks_match_llama_cpps_reference():
    rng = np.random.default_rng(7)
    blocks = rng.standard_normal((24, 32)).astype(np.float32) * 0.05
    blocks[3] = 0  # an empty block: scale 0
    blocks[4, :] = np.abs(blocks[4])  # one sign only
    blocks[5, 7] = 3.0  # an outlier
    got = iq4nl.quantize(blocks)
    assert got.shape == (24, 18)
    for i, block in enumerate(blocks):
        assert got[i].tobytes() == reference_block(block), i


def test_gguf_py_reads_the_blocks_back_closer_than_q4_0():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((64, 256)) * 0.02).astype(np.float32)
    back = dequantize(iq4nl.quantize(w), GGMLQuantizationType.IQ4_NL).reshape(w.shape)
    q4_0 = dequantize(quantize(w, GGMLQuantizationType.Q4_0), GGMLQuantizationType.Q4_0).reshape(w.shape)
    err, err_q4_0 = np.sqrt(((back - w) ** 2).mean()), np.sqrt(((q4_0 - w) ** 2).mean())
    assert err < 0.95 * err_q4_0, (err, err_q4_0)
    assert err < 0.1 * w.std()


def test_rows_must_hold_whole_blocks():
    with pytest.raises(ValueError, match="multiple of 32"):
        iq4nl.quantize(np.zeros((2, 40), dtype=np.float32))
