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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finetune.corpus.texthash import TextArrays, char_classes

_TOKEN = re.compile(r"\w+|[^\w\s]")


def normalized_hash(text: str) -> str:
    """Hash of the text with line ends unified, trailing spaces and blank lines dropped."""
    lines = (line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    body = "\n".join(line for line in lines if line)
    return hashlib.sha1(body.encode("utf-8", "surrogatepass")).hexdigest()


def code_tokens(text: str) -> list[str]:
    """Identifiers, numbers and single punctuation characters: the units shingles are made of (the definition
    `token_hashes` computes without building the strings)."""
    return _TOKEN.findall(text)


_WORD, _SPACE = np.uint8(1), np.uint8(2)


@functools.cache
def _classes() -> np.ndarray:
    """The class of every code point of the Basic Multilingual Plane for `_TOKEN`: `_WORD` (`\\w`: `isalnum`
    or "_"), `_SPACE` (`\\s`: `isspace`), 0 otherwise (tested equal to `re` on every one)."""
    chars = [chr(cp) for cp in range(0x10000)]
    word = np.fromiter(map(str.isalnum, chars), dtype=bool, count=len(chars))
    word[ord("_")] = True
    space = np.fromiter(map(str.isspace, chars), dtype=bool, count=len(chars))
    return word.astype(np.uint8) | (space.astype(np.uint8) << np.uint8(1))


def token_hashes(text: str, arrays: TextArrays | None = None) -> np.ndarray:
    """`[substring_hash(t) for t in code_tokens(text)]` in numpy: token boundaries from a class per
    character, hashes from prefix sums (`texthash`). `arrays` is `TextArrays.of(text)` when the caller has it."""
    arrays = TextArrays.of(text) if arrays is None else arrays
    cp = arrays.cp
    n = len(cp)
    if not n:
        return np.zeros(0, dtype=np.uint64)
    cls = char_classes(cp, _classes(), lambda c: _WORD if c.isalnum() else _SPACE if c.isspace() else 0)
    word, other = cls == _WORD, cls == 0
    after_word = np.zeros(n, dtype=bool)
    after_word[1:] = word[:-1]
    before_word = np.zeros(n, dtype=bool)
    before_word[:-1] = word[1:]
    starts = np.flatnonzero(other | (word & ~after_word))
    ends = np.flatnonzero(other | (word & ~before_word)) + 1
    return arrays.hashes(starts, ends)


def shingle_hashes(text: str, size: int = 5, arrays: TextArrays | None = None) -> np.ndarray:
    """Distinct 32-bit hashes of the `size`-grams of code tokens (vectorised: no Python loop per shingle)."""
    h = token_hashes(text, arrays)
    if not len(h):
        return np.zeros(0, dtype=np.uint32)
    k = min(size, len(h))
    n = len(h) - k + 1
    acc = h[:n].copy()  # in place from here: no temporary array per step
    with np.errstate(over="ignore"):
        for j in range(1, k):
            acc *= np.uint64(1_000_003)
            acc += h[j:j + n]
        acc ^= acc >> np.uint64(29)
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        acc ^= acc >> np.uint64(32)
    low = np.sort(acc.astype(np.uint32))  # the low 32 bits, distinct: a sort and a mask (np.unique: ~10x slower)
    keep = np.empty(len(low), dtype=bool)
    keep[0] = True
    np.not_equal(low[1:], low[:-1], out=keep[1:])
    return low[keep]


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
_ROWS = 1024  # shingles per block: a block's products take _ROWS * num_perm * 4 bytes (here 512 KiB)


def minhash_values(hashes: np.ndarray, num_perm: int = 128) -> np.ndarray:
    """`minhash(hashes).hashvalues` computed in numpy blocks: datasketch's affine32 scheme (MurmurHash3's
    finalizer, then `a * h + b` modulo 2**32 per permutation, the minimum of each), without its Python loop
    over the inputs and with bounded memory on a large file (one block buffer, reused)."""
    a, b = _permutations(num_perm)
    out = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    if not len(hashes):
        return out
    s1, m1, s2, m2, s3 = _FMIX32
    block = np.empty((min(_ROWS, len(hashes)), num_perm), dtype=np.uint32)
    with np.errstate(over="ignore"):
        h = hashes.astype(np.uint32)  # a copy: the finalizer runs in place
        h ^= h >> s1
        h *= m1
        h ^= h >> s2
        h *= m2
        h ^= h >> s3
        for i in range(0, len(h), _ROWS):
            rows = h[i:i + _ROWS]
            products = block[:len(rows)]
            np.multiply(rows[:, None], a, out=products)
            products += b
            np.minimum(out, products.min(axis=0), out=out)
    return out


def signature(text: str, num_perm: int = 128, shingle_size: int = 5, arrays: TextArrays | None = None) -> bytes:
    """The MinHash signature of a file as bytes (small, picklable, what workers send back)."""
    return minhash_values(shingle_hashes(text, shingle_size, arrays), num_perm).tobytes()


def from_signature(sig: bytes):
    from datasketch import MinHash

    values = np.frombuffer(sig, dtype=np.uint32)
    return MinHash(hashvalues=values, permutations=_permutations(len(values)), scheme="affine32")


@functools.cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that `datasketch.MinHashLSH` chooses for `threshold`: it integrates its error
    curves to find them (~30 ms), so they are computed once, ahead of time by `warm`."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def warm(thresholds: Sequence[float], num_perm: int) -> None:
    """Import datasketch and choose the LSH parameters now (the pipeline does it while the workers sign files,
    so that neither waits on the reduce step's critical path)."""
    for threshold in thresholds:
        lsh_params(threshold, num_perm)


def _lsh(threshold: float, num_perm: int):
    from datasketch import MinHashLSH

    return MinHashLSH(num_perm=num_perm, params=lsh_params(threshold, num_perm))


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
    lsh = None
    for item in order:
        if item.exact in seen:
            counts["exact_duplicate"] += 1
            continue
        seen.add(item.exact)
        m = from_signature(item.sig)
        if lsh is None:
            lsh = _lsh(threshold, len(m))
        if m.is_empty() is False and lsh.query(m):
            counts["near_duplicate"] += 1
            continue
        lsh.insert(item.key, m)
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

    lsh = None
    for item in sorted(items, key=lambda it: it.key):
        m = from_signature(item.sig)
        if lsh is None:
            lsh = _lsh(threshold, len(m))
        for other in lsh.query(m):
            a, b = find(item.key), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(item.key, m)
    return {k: find(k) for k in parent}


def reduce(items: Sequence[DedupInput], near_dup_threshold: float, split_threshold: float
           ) -> tuple[list[int], dict[int, int], Counter]:
    """The whole reduce step: (kept keys, near-duplicate groups of the kept files, counts)."""
    counts: Counter = Counter()
    kept = set(dedup(items, near_dup_threshold, counts))
    groups = near_duplicate_groups([it for it in items if it.key in kept], split_threshold)
    return sorted(kept), groups, counts


def jaccard(a: str, b: str, shingle_size: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (for tests and audits)."""
    sa, sb = set(shingle_hashes(a, shingle_size).tolist()), set(shingle_hashes(b, shingle_size).tolist())
    return len(sa & sb) / max(len(sa | sb), 1)
