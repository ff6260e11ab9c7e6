"""The per-file cache of incremental builds (`inhouse corpus build --cache DIR`, `[corpus] cache_dir`).

What a file costs is per file: the prepare pass (filters, secret redaction, word index, exact hash, MinHash
signature) and the choice of its spans (tree-sitter parse, span selection). Both are cached, keyed by the
file's git blob id (`blob_id`: the hash `git hash-object` gives its bytes) and a fingerprint of everything
else that changes the result (`Fingerprints`: the tokenizer's bytes, the FIM format, the config fields the pass
reads, this code and the versions of the libraries it calls). A rebuild reads the entries of unchanged files
instead of redoing their work; dedup and the split still run over every file (from the cached signatures), and
rows are still rendered (repository context depends on the other files), so a build with the cache writes the
same bytes as one without it.

Entries are written to a temporary name and renamed, and carry their length and a digest, so a build killed
at any point (or a disk that lost a write) leaves nothing that reads as an entry: a damaged entry is a miss.
`prune` drops old entries after a build: `cache_max_age_days`, `cache_max_gb` (least recently used first);
entries this build read or wrote are never dropped (a hit touches its entry's modification time).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core import config as core_config
from core.artifacts import file_sha256
from core.errors import CorpusError

FORMAT = "v1"  # the layout of the directory and of an entry: a change starts a fresh cache beside the old one
_MAGIC = b"inhouse-corpus-cache\x01"
_LENGTHS = struct.Struct("<IQ")  # header bytes, payload bytes
_DIGEST = 16  # blake2b of header + payload
_TMP = ".tmp-"
_STALE_TMP_S = 3600  # temporary files of a killed build older than this are removed by `prune`

PREPARE, SPANS = "prepare", "spans"

# Config fields that act only after the per-file work (the split, dedup, the executor, the writer) or that are
# replaced by what they point at (the model directory by the tokenizer's bytes): not part of any fingerprint.
_GLOBAL_FIELDS = frozenset({
    "model", "tokenizer", "fim_format", "workers", "executor", "ray_address", "ray_workers", "eval_fraction",
    "dev_fraction", "eval_since", "split_threshold", "near_dup_threshold", "rows_per_shard", "cache_dir",
    "cache_max_gb", "cache_max_age_days",
})
# Fields read only when a file's rows are made (its spans, render, context): not part of the prepare pass's
# fingerprint. Every other field is, so a new filter option invalidates the cache without anyone listing it.
_EXAMPLE_FIELDS = frozenset({
    "seed", "span_mix", "eval_span_mix", "max_examples_per_file", "eval_examples_per_file", "max_middle_tokens",
    "max_prefix_tokens", "max_suffix_tokens", "min_prefix_chars", "max_char_span", "fim_rate", "spm_rate",
    "context_rate", "max_context_files", "max_context_tokens", "max_l2r_tokens",
})
# The code whose output is cached, and the libraries it calls.
_SOURCES = ("finetune/corpus", "core/fim.py", "core/languages.py", "core/languages.toml")
_PACKAGES = ("detect-secrets", "tokenizers", "tree-sitter", "numpy")


def blob_id(data: bytes) -> str:
    """The git blob id of `data` (`git hash-object --no-filters`): equal for equal bytes in any repository."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


@functools.cache
def code_version() -> str:
    """A digest of the corpus code, the language table and the versions of the libraries the per-file work
    calls (the grammars included): a change to any of them is a new cache key for every file."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for name in _SOURCES:
        path = root / name
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        for file in files:
            h.update(f"{file.relative_to(root)}\0".encode())
            h.update(file.read_bytes())
    import tomllib

    table = tomllib.loads((root / "core" / "languages.toml").read_text(encoding="utf-8"))
    grammars = sorted({row["module"].replace("_", "-") for row in table.get("language", [])})
    for package in (*_PACKAGES, *grammars):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "-"
        h.update(f"{package}={version}\0".encode())
    return h.hexdigest()



@dataclass(frozen=True)
class Fingerprints:
    """Where the cache is and the fingerprint of each pass (computed once by the build, sent to the workers)."""

    root: str
    prepare: str
    spans: str

    @classmethod
    def of(cls, cfg: Any, tokenizer_file: str, fim_format: str, root: str) -> Fingerprints:
        fields = core_config.to_dict(cfg)
        common = {"tokenizer_sha256": file_sha256(tokenizer_file), "fim_format": fim_format,
                  "code": code_version(), "format": FORMAT}
        prepare = {k: v for k, v in fields.items() if k not in _GLOBAL_FIELDS | _EXAMPLE_FIELDS}
        spans = {k: v for k, v in fields.items() if k not in _GLOBAL_FIELDS}

        def digest(values: dict[str, Any]) -> str:
            text = json.dumps({**values, **common}, sort_keys=True, default=str)
            return hashlib.sha256(text.encode()).hexdigest()

        return cls(root=str(Path(root).resolve()), prepare=digest(prepare), spans=digest(spans))

    def key(self, kind: str, *parts: str) -> str:
        """The entry name of one file's result of pass `kind`."""
        fp = self.prepare if kind == PREPARE else self.spans
        return hashlib.sha256("\0".join((kind, fp, *parts)).encode("utf-8", "surrogatepass")).hexdigest()

    def path(self, kind: str, key: str) -> str:
        return os.path.join(self.root, FORMAT, kind, key[:2], key)

    def get(self, kind: str, key: str) -> tuple[dict[str, Any], bytes] | None:
        """(header, payload) of an entry, or None when it is missing or damaged (then it is recomputed)."""
        path = self.path(kind, key)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        entry = _decode(data)
        if entry is not None:
            try:
                os.utime(path)  # used by this build: `prune` keeps it
            except OSError:
                pass
        return entry

    def put(self, kind: str, key: str, header: dict[str, Any], payload: bytes = b"") -> None:
        """Write an entry atomically (temporary name, then rename); a cache that cannot be written is no error:
        the build has its result either way."""
        path = self.path(kind, key)
        tmp = f"{os.path.dirname(path)}/{_TMP}{key}.{socket.gethostname()}.{os.getpid()}"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(_encode(header, payload))
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_WIDTHS: tuple[type[np.unsignedinteger[Any]], ...] = (np.uint8, np.uint16, np.uint32)


def pack_index(blob: bytes) -> bytes:
    """A `WordIndex.to_bytes()` blob, smaller: its two increasing arrays (word ends, cumulative token counts) as
    differences in the narrowest unsigned type that holds them (one byte each on code: the index took 1.8 times
    the text's bytes, now under half). Anything else is kept as it is."""
    n = int.from_bytes(blob[:4], "little") if len(blob) >= 8 else -1
    if n < 1 or len(blob) != 8 + 8 * n:
        return b"\xff" + blob
    arrays = np.frombuffer(blob, dtype="<u4", count=2 * n, offset=8).reshape(2, n).astype(np.int64)
    diffs = np.diff(arrays, axis=1, prepend=0)
    if diffs.min() < 0:
        return b"\xff" + blob
    width = next(i for i, t in enumerate(_WIDTHS) if diffs.max() <= np.iinfo(t).max)
    return bytes([width]) + blob[:8] + diffs.astype(np.dtype(_WIDTHS[width]).newbyteorder("<")).tobytes()


def unpack_index(packed: bytes) -> bytes:
    """The blob `pack_index` was given."""
    if not packed or packed[0] == 0xFF:
        return packed[1:]
    n = int.from_bytes(packed[1:5], "little")
    diffs = np.frombuffer(packed, dtype=np.dtype(_WIDTHS[packed[0]]).newbyteorder("<"), count=2 * n, offset=9)
    arrays = np.cumsum(diffs.reshape(2, n).astype(np.uint32), axis=1, dtype=np.uint32)
    return packed[1:9] + arrays.astype("<u4").tobytes()


def _encode(header: dict[str, Any], payload: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    digest = hashlib.blake2b(head, digest_size=_DIGEST)
    digest.update(payload)
    return b"".join((_MAGIC, _LENGTHS.pack(len(head), len(payload)), digest.digest(), head, payload))


def _decode(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    start = len(_MAGIC) + _LENGTHS.size + _DIGEST
    if len(data) < start or not data.startswith(_MAGIC):
        return None
    n_head, n_payload = _LENGTHS.unpack_from(data, len(_MAGIC))
    if len(data) != start + n_head + n_payload:
        return None
    head, payload = data[start:start + n_head], data[start + n_head:]
    digest = hashlib.blake2b(head, digest_size=_DIGEST)
    digest.update(payload)
    if digest.digest() != data[start - _DIGEST:start]:
        return None
    try:
        return json.loads(head), payload
    except ValueError:
        return None


def check_dir(root: str) -> None:
    """The cache directory must be a directory this build can write (created when missing)."""
    try:
        os.makedirs(os.path.join(root, FORMAT), exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"`cache_dir` {root!r}: cannot create it: {exc}") from exc
    if not os.access(os.path.join(root, FORMAT), os.W_OK | os.X_OK):
        raise CorpusError(f"`cache_dir` {root!r}: not writable")


def _entries(root: str) -> Iterator[os.DirEntry]:
    top = os.path.join(root, FORMAT)
    for kind in (PREPARE, SPANS):
        try:
            fans = list(os.scandir(os.path.join(top, kind)))
        except OSError:
            continue
        for fan in fans:
            if fan.is_dir(follow_symlinks=False):
                try:
                    yield from os.scandir(fan.path)
                except OSError:
                    continue


def prune(root: str, build_started: float, max_gb: float, max_age_days: float) -> dict[str, int]:
    """Drop entries unused for `max_age_days`, then the least recently used until the cache holds at most
    `max_gb` (0 turns a rule off). Entries touched since `build_started` (this build's) always stay, so the
    cache may stay above `max_gb` when this build alone needs more. Returns what was kept and removed."""
    now = time.time()
    keep_since = build_started - 1.0  # file times can be coarser than the clock
    old: list[tuple[float, int, str]] = []
    out = {"entries": 0, "bytes": 0, "pruned_entries": 0, "pruned_bytes": 0}
    for entry in _entries(root):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if entry.name.startswith(_TMP):
            if st.st_mtime < now - _STALE_TMP_S:  # left by a killed build
                _remove(entry.path)
            continue
        out["entries"] += 1
        out["bytes"] += st.st_size
        if st.st_mtime < keep_since:
            old.append((st.st_mtime, st.st_size, entry.path))
    old.sort()
    limit = max_gb * 1e9 if max_gb > 0 else float("inf")
    for mtime, size, path in old:
        too_old = max_age_days > 0 and mtime < now - max_age_days * 86400
        if not too_old and out["bytes"] <= limit:
            continue
        if _remove(path):
            out["entries"] -= 1
            out["bytes"] -= size
            out["pruned_entries"] += 1
            out["pruned_bytes"] += size
    return out


def _remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
