"""Tensors of a safetensors file as float32 numpy arrays, without torch: what `server/gguf_export.py` reads.

The header is parsed here rather than with `safetensors.numpy` because numpy has no bfloat16 and because a
truncated file must fail with a ModelError naming the file and the tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.errors import ModelError

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) for each tensor of the safetensors file `path`, each checked against the file's size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelError(f"{str(path)!r} is not a safetensors file: {size} bytes")
            n = int.from_bytes(head, "little")
            if n > size - 8:
                raise ModelError(f"{str(path)!r} is truncated or not safetensors: header of {n} bytes, "
                                 f"file of {size}")
            header = json.loads(fh.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{str(path)!r} is not a readable safetensors file: {exc}") from None
    if not isinstance(header, dict):
        raise ModelError(f"{str(path)!r} has a malformed safetensors header")
    base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        kind = info.get("dtype") if isinstance(info, dict) else None
        dtype = _DTYPES.get(kind) if isinstance(kind, str) else None
        if dtype is None:
            raise ModelError(f"{str(path)!r}: tensor {name!r} has dtype {kind!r}; supported: {sorted(_DTYPES)}")
        try:
            start, end = (base + int(o) for o in info["data_offsets"])
            shape = tuple(int(d) for d in info["shape"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{str(path)!r}: tensor {name!r} has a malformed header entry {info!r}") from None
        if end > size or end - start != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise ModelError(f"{str(path)!r} is truncated or corrupt: tensor {name!r} needs bytes "
                             f"{start}..{end}, file has {size}")
        raw = np.frombuffer(mm[start:end], dtype=dtype).reshape(shape)
        if kind == "BF16":
            yield name, (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            yield name, raw.astype(np.float32)
