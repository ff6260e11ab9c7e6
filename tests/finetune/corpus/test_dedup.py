"""Dedup: exact (normalised) and near duplicates through datasketch MinHash LSH, on real sources."""

from __future__ import annotations

from collections import Counter

from finetune.corpus.dedup import (
    DedupInput,
    dedup,
    from_signature,
    jaccard,
    near_duplicate_groups,
    normalized_hash,
    signature,
)
from tests.finetune.corpus.conftest import package_source


def test_normalized_hash_ignores_line_ends_trailing_space_and_blank_lines():
    a = "def f():\n    return 1\n"
    assert normalized_hash(a) == normalized_hash("def f():   \r\n\r\n    return 1\r\n\n")
    assert normalized_hash(a) != normalized_hash("def f():\n    return 2\n")


def sources():
    return [p.read_text() for p in sorted(package_source("click").glob("*.py")) if p.stat().st_size > 8000]


def test_signature_estimates_jaccard():
    a = sources()[0]
    lines = a.split("\n")
    b = "\n".join(line + " # x" if i % 10 == 0 else line for i, line in enumerate(lines))
    exact = jaccard(a, b)
    est = from_signature(signature(a)).jaccard(from_signature(signature(b)))
    assert 0.3 < exact < 0.98 and abs(est - exact) < 0.12


def test_dedup_drops_exact_and_near_copies_and_prefers_held_out_files():
    texts = sources()
    near = texts[0].replace("def ", "def  ", 3)
    items = [DedupInput(i, normalized_hash(t), signature(t)) for i, t in enumerate(texts)]
    items.append(DedupInput(100, normalized_hash(texts[1] + "\n\n"), signature(texts[1] + "\n\n")))
    items.append(DedupInput(101, normalized_hash(near), signature(near), prefer=True))
    counts: Counter = Counter()
    kept = dedup(items, 0.7, counts)
    assert counts["exact_duplicate"] == 1 and counts["near_duplicate"] == 1
    assert 100 not in kept and 101 in kept and 0 not in kept  # the preferred copy wins
    assert set(kept) == set(range(1, len(texts))) | {101}


def test_groups_join_near_copies_only():
    texts = sources()[:4]
    items = [DedupInput(i, "", signature(t)) for i, t in enumerate(texts)]
    lines = texts[2].split("\n")
    copy = "\n".join(line + " # y" if i % 5 == 0 else line for i, line in enumerate(lines))
    items.append(DedupInput(9, "", signature(copy)))
    groups = near_duplicate_groups(items, 0.5)
    assert groups[9] == groups[2] == 2
    assert len({groups[i] for i in range(4)}) == 4


def test_token_hashes_are_the_hashes_of_the_regex_tokens():
    from finetune.corpus.dedup import code_tokens, token_hashes
    from finetune.corpus.texthash import substring_hash as token_hash

    texts = [p.read_text() for p in sorted(package_source("click").glob("*.py"))[:6]]
    texts += ["", "   \n\t", "x", "_a1 ", "caf\u00e9 = '\U0001d49c\U0001f600' + \u00b2\u2167 # \u3000\u2028\ud800!",
              "\U0001d7d8\U0001d7d9 a\U00010000b", "a" * 70000]
    for text in texts:
        assert token_hashes(text).tolist() == [token_hash(t) for t in code_tokens(text)], text[:40]


def test_shingle_hashes_are_the_distinct_mixed_five_grams():
    from finetune.corpus.dedup import code_tokens, shingle_hashes
    from finetune.corpus.texthash import substring_hash as token_hash

    mask = (1 << 64) - 1

    def reference(text: str, size: int = 5) -> list[int]:
        h = [token_hash(t) for t in code_tokens(text)]
        k = min(size, len(h))
        out = set()
        for i in range(len(h) - k + 1 if h else 0):
            acc = 0
            for j in range(k):
                acc = (acc * 1_000_003 + h[i + j]) & mask if j else h[i]
            acc ^= acc >> 29
            acc = (acc * 0xBF58476D1CE4E5B9) & mask
            acc ^= acc >> 32
            out.add(acc & 0xFFFFFFFF)
        return sorted(out)

    text = sorted(package_source("click").glob("*.py"))[0].read_text()
    for sample in (text, text + text, "a b", "", "x = 1"):
        assert shingle_hashes(sample).tolist() == reference(sample)


def test_token_classes_agree_with_re_on_every_basic_plane_character():
    import re

    from finetune.corpus.dedup import _SPACE, _WORD, _classes

    word, space = re.compile(r"\w"), re.compile(r"\s")
    expected = [_WORD if word.match(c) else _SPACE if space.match(c) else 0 for c in map(chr, range(0x10000))]
    assert _classes().tolist() == expected


def test_numpy_signature_equals_datasketch_minhash():
    import numpy as np

    from finetune.corpus.dedup import minhash, minhash_values, shingle_hashes
    from tests.finetune.corpus.conftest import package_source

    for path in sorted(package_source("tqdm").rglob("*.py"))[:8]:
        hashes = shingle_hashes(path.read_text())
        ref = minhash(hashes).hashvalues.astype(np.uint32)  # datasketch's own update_batch
        assert (minhash_values(hashes) == ref).all(), path
    empty = minhash_values(np.zeros(0, dtype=np.uint32))
    assert (empty == minhash(np.zeros(0, dtype=np.uint32)).hashvalues).all()



def test_permutations_are_datasketchs():
    import numpy as np
    from datasketch import MinHash

    from finetune.corpus.dedup import _permutations

    for num_perm in (16, 64, 128):
        assert (_permutations(num_perm) == MinHash(num_perm=num_perm, seed=1, scheme="affine32").permutations).all()
    assert np.asarray(_permutations(128)).dtype == np.uint32
