"""IQ4_NL quantization in numpy (gguf-py de-quantizes IQ4_NL but cannot write it).

IQ4_NL keeps Q4_0's layout (blocks of 32 weights, one float16 scale, 4-bit codes) but its 16 levels are a
non-uniform table that fits weights' bell shape, and llama.cpp's CPU backend repacks it for its fast matrix
kernels as it does Q4_0 (`ggml-cpu/repack.cpp`), which Q4_1 has none of. This is llama.cpp's
`quantize_iq4_nl` without an importance matrix (`quantize_row_iq4_nl_impl` in ggml-quants.c: weights x²,
the scale chosen among 15 tries by weighted least squares), vectorized over blocks.
"""

from __future__ import annotations

import numpy as np

BLOCK = 32
TRIES = 7  # llama.cpp's ntry: scales from (-127 - 7) / max to (-127 + 7) / max
VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.float32)
# best_index_int8: the nearest level, the upper one on a tie, is the number of midpoints <= x; the midpoints are
# multiples of 1/2, so that count is the same for all x in [k/2, (k+1)/2): a table over floor(2x)
_MIDPOINTS = (VALUES[:-1] + VALUES[1:]) / 2
_LOW, _HIGH = int(2 * _MIDPOINTS[0]) - 1, int(2 * _MIDPOINTS[-1]) + 1
_TABLE = np.searchsorted(_MIDPOINTS, np.arange(_LOW, _HIGH + 1) / 2, side="right").astype(np.uint8)
_ROWS_PER_CHUNK = 1 << 16  # blocks quantized at once: bounds the temporaries (~30 MB) on large tensors


def _nearest(scaled: np.ndarray) -> np.ndarray:
    halves = np.floor(scaled * 2)
    np.clip(halves, _LOW, _HIGH, out=halves)
    return _TABLE[halves.astype(np.int32) - _LOW]


def _chunk(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scales float32 [n], codes uint8 [n, 32]) for blocks x [n, 32]."""
    weight = x * x
    weighted = weight * x
    pick = np.argmax(np.abs(x), axis=1)
    xmax = x[np.arange(len(x)), pick]
    live = np.abs(xmax) >= 1e-15
    safe_max = np.where(live, xmax, 1).astype(np.float32)

    def fit(inv_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = VALUES[_nearest(x * inv_scale[:, None])]
        return np.einsum("ij,ij->i", weighted, q), np.einsum("ij,ij->i", weight, q * q)

    sumqx, sumq2 = fit(-VALUES[0] / safe_max)  # first d = -max / values[0], then 15 tries of the other sign
    d = np.where(sumq2 > 0, sumqx / np.where(sumq2 > 0, sumq2, 1), 0).astype(np.float32)
    best = d * sumqx
    for step in range(-TRIES, TRIES + 1):
        sumqx, sumq2 = fit((step + VALUES[0]) / safe_max)
        better = (sumq2 > 0) & (sumqx * sumqx > best * sumq2)
        d = np.where(better, sumqx / np.where(sumq2 > 0, sumq2, 1), d).astype(np.float32)
        best = np.where(better, d * sumqx, best)
    d = np.where(live, d, 0).astype(np.float32)
    inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(np.float32)
    return d, _nearest(x * inv[:, None])


def quantize(values: np.ndarray) -> np.ndarray:
    """Rows of `values` (last dimension a multiple of 32) as IQ4_NL blocks: uint8 [..., cols / 32 * 18], each
    block a float16 scale then 16 bytes (code j in the low nibble of byte j, code j + 16 in its high nibble)."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] % BLOCK:
        raise ValueError(f"IQ4_NL needs rows of a multiple of {BLOCK} values, got {values.shape[-1]}")
    blocks = values.reshape(-1, BLOCK)
    out = np.empty((len(blocks), 2 + BLOCK // 2), dtype=np.uint8)
    for start in range(0, len(blocks), _ROWS_PER_CHUNK):
        d, codes = _chunk(blocks[start:start + _ROWS_PER_CHUNK])
        part = out[start:start + len(d)]
        part[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
        part[:, 2:] = codes[:, :BLOCK // 2] | (codes[:, BLOCK // 2:] << 4)
    return out.reshape(*values.shape[:-1], values.shape[-1] // BLOCK * (2 + BLOCK // 2))
