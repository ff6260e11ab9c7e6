"""Stage 4, dedup: exact duplicates (a hash of normalised text) and near-duplicates (MinHash LSH).

Near-duplicates follow The Stack / StarCoder: 5-gram shingles over code tokens, MinHash signatures and
`datasketch.MinHashLSH` at Jaccard 0.7. Signatures are computed per file in the workers (`signature`), the
index is built in one place (`dedup`, `near_duplicate_groups`) from signatures alone, so the same code
runs as a reduce step of a distributed engine.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def normalized_hash(text: str) -> str:
    """Hash of the text with line ends unified, trailing spaces and blank lines dropped."""
    lines = (line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    body = "\n".join(line for line in lines if line)
    return hashlib.sha1(body.encode("utf-8", "surrogatepass")).hexdigest()


def code_tokens(text: str) -> list[str]:
    """Identifiers, numbers and single punctuation characters: the units shingles are made of."""
    return _TOKEN.findall(text)


def shingle_hashes(text: str, size: int = 5) -> np.ndarray:
    """Distinct 32-bit hashes of the `size`-grams of code tokens (vectorised: no Python loop per shingle)."""
    tokens = code_tokens(text)
    if not tokens:
        return np.zeros(0, dtype=np.uint32)
    table = {t: zlib.crc32(t.encode("utf-8", "surrogatepass")) for t in set(tokens)}
    h = np.array(list(map(table.__getitem__, tokens)), dtype=np.uint64)
    k = min(size, len(tokens))
    n = len(tokens) - k + 1
    acc = h[:n].copy()  # in place from here: no temporary array per step
    with np.errstate(over="ignore"):
        for j in range(1, k):
            acc *= np.uint64(1_000_003)
            acc += h[j:j + n]
        acc ^= acc >> np.uint64(29)
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        acc ^= acc >> np.uint64(32)
    return np.unique(acc.astype(np.uint32))  # the low 32 bits


@functools.cache
def _permutations(num_perm: int) -> np.ndarray:
    """`datasketch.MinHash(num_perm, seed=1, scheme="affine32").permutations` (odd multipliers `a`, offsets
    `b`; tested equal), drawn without importing datasketch, whose import pulls in scipy: the workers that sign
    files need only these numbers. The LSH itself is datasketch's (`dedup`, `near_duplicate_groups`)."""
    gen = np.random.RandomState(1)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


def minhash(hashes: np.ndarray, num_perm: int = 128):
    """A `datasketch.MinHash` of precomputed 32-bit shingle hashes."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, permutations=_permutations(num_perm), scheme="affine32", hashfunc=int)
    if len(hashes):
        m.update_batch(hashes.tolist())
    return m


_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_ROWS = 4096  # shingles per block: a block's products take _ROWS * num_perm * 4 bytes


def minhash_values(hashes: np.ndarray, num_perm: int = 128) -> np.ndarray:
    """`minhash(hashes).hashvalues` computed in numpy blocks: datasketch's affine32 scheme (MurmurHash3's
    finalizer, then `a * h + b` modulo 2**32 per permutation, the minimum of each), without its Python loop
    over the inputs and with bounded memory on a large file."""
    a, b = _permutations(num_perm)
    out = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    s1, m1, s2, m2, s3 = _FMIX32
    with np.errstate(over="ignore"):
        for i in range(0, len(hashes), _ROWS):
            h = hashes[i:i + _ROWS].astype(np.uint32)
            h = h ^ (h >> s1)
            h = h * m1
            h = h ^ (h >> s2)
            h = h * m2
            h = h ^ (h >> s3)
            np.minimum(out, (h[:, None] * a + b).min(axis=0), out=out)
    return out


def signature(text: str, num_perm: int = 128, shingle_size: int = 5) -> bytes:
    """The MinHash signature of a file as bytes (small, picklable, what workers send back)."""
    return minhash_values(shingle_hashes(text, shingle_size), num_perm).tobytes()


def from_signature(sig: bytes):
    from datasketch import MinHash

    values = np.frombuffer(sig, dtype=np.uint32)
    return MinHash(hashvalues=values, permutations=_permutations(len(values)), scheme="affine32")


@dataclass(frozen=True)
class DedupInput:
    """What dedup needs of a file: its key, exact hash, signature, and whether it must be kept first."""

    key: int
    exact: str
    sig: bytes
    prefer: bool = False  # e.g. a file held out by --eval-since: its copy wins over the others


def dedup(items: Sequence[DedupInput], threshold: float, counts: Counter) -> list[int]:
    """Keys of the files to keep: the first of every exact and near-duplicate cluster (preferred files first)."""
    from datasketch import MinHashLSH

    order = sorted(items, key=lambda it: (not it.prefer, it.key))
    seen: set[str] = set()
    kept: list[int] = []
    lsh = None
    for item in order:
        if item.exact in seen:
            counts["exact_duplicate"] += 1
            continue
        seen.add(item.exact)
        m = from_signature(item.sig)
        if lsh is None:
            lsh = MinHashLSH(threshold=threshold, num_perm=len(m))
        if m.is_empty() is False and lsh.query(m):
            counts["near_duplicate"] += 1
            continue
        lsh.insert(item.key, m)
        kept.append(item.key)
    counts["kept"] += len(kept)
    return sorted(kept)


def near_duplicate_groups(items: Sequence[DedupInput], threshold: float) -> dict[int, int]:
    """Union-find over LSH neighbours at `threshold`: key -> the smallest key of its group."""
    from datasketch import MinHashLSH

    parent = {it.key: it.key for it in items}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    lsh = None
    for item in sorted(items, key=lambda it: it.key):
        m = from_signature(item.sig)
        if lsh is None:
            lsh = MinHashLSH(threshold=threshold, num_perm=len(m))
        for other in lsh.query(m):
            a, b = find(item.key), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(item.key, m)
    return {k: find(k) for k in parent}


def jaccard(a: str, b: str, shingle_size: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (for tests and audits)."""
    sa, sb = set(shingle_hashes(a, shingle_size).tolist()), set(shingle_hashes(b, shingle_size).tolist())
    return len(sa & sb) / max(len(sa | sb), 1)
