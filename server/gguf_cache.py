"""GGUF files exported once and reused: the llama.cpp engine asks here for a model's or an adapter's GGUF path.

A file lives beside its source, `<model_dir>/.inhouse/model-<QTYPE>-<fingerprint>.gguf` and
`<adapter_dir>/.inhouse/lora-<fingerprint>.gguf`, or under the caller's `cache_dir` when the source directory is
read-only. The fingerprint hashes the name, size and mtime (ns) of every file an export reads, so an edited or
replaced source gets a new file; writes are atomic renames, so two processes racing to export both end up with
the same complete file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from core.errors import ModelError
from server.config import GGUF_TYPES
from server.gguf_export import export_lora, export_model, source_files

log = logging.getLogger(__name__)

# Bumped whenever the exporter's output changes, so files written by an older exporter are not reused.
EXPORT_VERSION = 3  # 2: a Q4_0 file keeps its head (tied embeddings) at Q8_0; 3: a Q4_1 file too
CACHE_SUBDIR = ".inhouse"


def fingerprint(files: list[Path], *extra: str) -> str:
    """16 hex digits from the files' names, sizes and mtimes (not their contents: a 500 MB hash per start is slow)."""
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for part in extra:
        h.update(f"\0{part}".encode())
    for f in files:
        try:
            st = f.stat()
        except OSError as exc:
            raise ModelError(f"{str(f)!r} is not readable: {exc}") from None
        h.update(f"\0{f.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cache_root(source: Path, cache_dir: Path | None) -> Path:
    """`<source>/.inhouse` when it can be written, else a folder of `cache_dir` named for the source's path."""
    beside = source / CACHE_SUBDIR
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK):
            return beside
    except OSError:
        pass
    if cache_dir is None:
        raise ModelError(f"{str(source)!r} is read-only and no cache directory was given for its GGUF export")
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    root = Path(cache_dir) / f"{source.name}-{key}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cache directory {str(root)!r} cannot be created: {exc}") from None
    return root


def _drop_stale(root: Path, prefix: str, keep: Path) -> None:
    # Older exports of the same source; a process still reading one keeps its open file (POSIX unlink).
    for old in root.glob(f"{prefix}*.gguf"):
        if old != keep:
            try:
                old.unlink()
            except OSError as exc:
                log.debug("could not remove stale %s: %s", old, exc)


def model_gguf(model_dir: str | Path, qtype: str = "Q8_0", cache_dir: str | Path | None = None) -> Path:
    """The GGUF of the HF Llama checkpoint `model_dir` in `qtype`, exported on first use."""
    model_dir = Path(model_dir)
    if qtype not in GGUF_TYPES:
        raise ModelError(f"`qtype` must be one of {', '.join(GGUF_TYPES)}, got {qtype!r}")
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{str(model_dir)!r} is not a model directory (no config.json)")
    root = _cache_root(model_dir, Path(cache_dir) if cache_dir else None)
    prefix = f"model-{qtype}-"
    out = root / f"{prefix}{fingerprint(source_files(model_dir), qtype)}.gguf"
    if out.is_file():
        return out
    log.info("exporting %s to %s", model_dir, out)
    export_model(model_dir, out, qtype)
    _drop_stale(root, prefix, out)
    return out


def adapter_gguf(adapter_dir: str | Path, model_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The llama.cpp LoRA GGUF of the peft adapter `adapter_dir` over `model_dir`, exported on first use."""
    adapter_dir, model_dir = Path(adapter_dir), Path(model_dir)
    sources = [adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors",
               model_dir / "config.json"]  # the base's head counts decide the Q/K permutation
    root = _cache_root(adapter_dir, Path(cache_dir) if cache_dir else None)
    out = root / f"lora-{fingerprint(sources, str(model_dir.resolve()))}.gguf"
    if out.is_file():
        return out
    log.info("exporting adapter %s to %s", adapter_dir, out)
    export_lora(adapter_dir, out, model_dir)
    _drop_stale(root, "lora-", out)
    return out
