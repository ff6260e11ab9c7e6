"""Stage 4, dedup: exact duplicates (a hash of normalised text) and near-duplicates (MinHash LSH).

Near-duplicates follow The Stack / StarCoder: 5-gram shingles over code tokens, MinHash signatures and
`datasketch.MinHashLSH` at Jaccard 0.7. Signatures are computed per file in the workers (`signature`), the
index is built in one place (`dedup`, `near_duplicate_groups`) from signatures alone, so the same code
runs as a reduce step of a distributed engine. datasketch's MinHash (affine32 scheme, seed 1) and its LSH
banding are redone here in numpy with identical values, parameters and answers (tested against datasketch):
importing datasketch pulls in scipy, ~0.7 CPU s on every build.
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
    """`datasketch.MinHash(num_perm, seed=1, scheme="affine32").permutations`: odd multipliers `a`, offsets `b`."""
    gen = np.random.RandomState(1)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


def minhash(hashes: np.ndarray, num_perm: int = 128):
    """A `datasketch.MinHash` of precomputed 32-bit shingle hashes, by datasketch itself (tests compare)."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=1, scheme="affine32", hashfunc=int)
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
    """The `datasketch.MinHash` of a signature (for tests and audits: the pipeline itself needs no datasketch)."""
    from datasketch import MinHash

    values = np.frombuffer(sig, dtype=np.uint32)
    return MinHash(hashvalues=values, seed=1, scheme="affine32")


@functools.cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) as `datasketch.MinHashLSH(threshold, num_perm)` chooses them: the pair that
    minimises the false positive plus the false negative probability mass (weights 0.5 each), the first
    such pair in datasketch's loop order. datasketch integrates with scipy's `quad`; the integrands are
    polynomials of degree at most `num_perm`, which Gauss-Legendre quadrature with `num_perm // 2 + 1`
    nodes integrates exactly, so the errors agree to rounding."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def integral(lo: float, hi: float, false_positive: bool) -> np.ndarray:
        s = (hi - lo) / 2 * x + (hi + lo) / 2
        p = 1 - (1 - s[None, :] ** pairs[:, 1:2]) ** pairs[:, 0:1]  # P(a pair at similarity s is a candidate)
        return (p if false_positive else 1 - p) @ w * (hi - lo) / 2

    error = integral(0.0, threshold, True) * 0.5 + integral(threshold, 1.0, False) * 0.5
    b, r = pairs[int(np.argmin(error))]  # argmin takes the first of equal minima, as datasketch's `<` does
    return int(b), int(r)


class _Bands:
    """`datasketch.MinHashLSH` with its default dict storage: each signature is cut into `b` bands of `r`
    values; a query answers every inserted key sharing at least one whole band with it."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.b, self.r = lsh_params(threshold, num_perm)
        if self.b < 2:
            raise ValueError("The number of bands are too small (b < 2)")  # datasketch's own check
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in range(self.b)]

    def _bands(self, sig: bytes) -> list[bytes]:
        width = 4 * self.r  # uint32 values
        return [sig[i * width:(i + 1) * width] for i in range(self.b)]

    def query(self, sig: bytes) -> set[int]:
        out: set[int] = set()
        for table, band in zip(self.tables, self._bands(sig), strict=True):
            out.update(table.get(band, ()))
        return out

    def insert(self, key: int, sig: bytes) -> None:
        for table, band in zip(self.tables, self._bands(sig), strict=True):
            table.setdefault(band, []).append(key)


_EMPTY = np.iinfo(np.uint32).max  # every value of the signature of a text without shingles


def _is_empty(sig: bytes) -> bool:
    return bool((np.frombuffer(sig, dtype=np.uint32) == _EMPTY).all())


@dataclass(frozen=True)
class DedupInput:
    """What dedup needs of a file: its key, exact hash, signature, and whether it must be kept first."""

    key: int
    exact: str
    sig: bytes
    prefer: bool = False  # e.g. a file held out by --eval-since: its copy wins over the others


def dedup(items: Sequence[DedupInput], threshold: float, counts: Counter) -> list[int]:
    """Keys of the files to keep: the first of every exact and near-duplicate cluster (preferred files first)."""
    order = sorted(items, key=lambda it: (not it.prefer, it.key))
    seen: set[str] = set()
    kept: list[int] = []
    lsh: _Bands | None = None
    for item in order:
        if item.exact in seen:
            counts["exact_duplicate"] += 1
            continue
        seen.add(item.exact)
        if lsh is None:
            lsh = _Bands(threshold, len(item.sig) // 4)
        if not _is_empty(item.sig) and lsh.query(item.sig):
            counts["near_duplicate"] += 1
            continue
        lsh.insert(item.key, item.sig)
        kept.append(item.key)
    counts["kept"] += len(kept)
    return sorted(kept)


def near_duplicate_groups(items: Sequence[DedupInput], threshold: float) -> dict[int, int]:
    """Union-find over LSH neighbours at `threshold`: key -> the smallest key of its group."""
    parent = {it.key: it.key for it in items}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    lsh: _Bands | None = None
    for item in sorted(items, key=lambda it: it.key):
        if lsh is None:
            lsh = _Bands(threshold, len(item.sig) // 4)
        for other in lsh.query(item.sig):
            a, b = find(item.key), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(item.key, item.sig)
    return {k: find(k) for k in parent}


def jaccard(a: str, b: str, shingle_size: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (for tests and audits)."""
    sa, sb = set(shingle_hashes(a, shingle_size).tolist()), set(shingle_hashes(b, shingle_size).tolist())
    return len(sa & sb) / max(len(sa | sb), 1)
