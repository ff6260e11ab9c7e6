"""Stage 5, split: which files are the exam (eval), the checkpoint-choice set (dev) and training data.

The unit is a group of near-duplicate files (Jaccard >= `split_threshold` by MinHash LSH, lower than the
dedup threshold so the guard is wider than what dedup removed): a whole group lands in one split, so no
near-copy of an exam file is trained on. With `--eval-since DATE` the exam is the files changed after DATE;
their near-copies that were not changed are dropped rather than trained on (eval wins).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping

TRAIN, DEV, EVAL = "train", "dev", "eval"
SPLITS = (TRAIN, DEV, EVAL)


def _score(seed: int, name: str) -> float:
    """A uniform number in [0, 1) fixed by seed and name (the split never depends on worker order)."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    names: Mapping[int, str],
    groups: Mapping[int, int],
    forced_eval: set[int],
    eval_fraction: float,
    dev_fraction: float,
    seed: int,
    counts: Counter,
    eval_since: bool = False,
) -> dict[int, str]:
    """key -> split for every kept file; keys missing from the result were dropped (near-copies of the exam).

    `names` gives each key a stable name ("repo/path"), `groups` maps a key to its group's representative.
    """
    members: dict[int, list[int]] = defaultdict(list)
    for key, rep in groups.items():
        members[rep].append(key)
    reps = sorted(members, key=lambda r: names[r])
    out: dict[int, str] = {}
    if eval_since:
        for rep in reps:
            group = members[rep]
            held = [k for k in group if k in forced_eval]
            if held:
                for k in group:
                    if k in forced_eval:
                        out[k] = EVAL
                    else:
                        counts["dropped_near_eval"] += 1
            else:
                split = DEV if _score(seed, names[rep]) < dev_fraction else TRAIN
                for k in group:
                    out[k] = split
    else:
        scores = {rep: _score(seed, names[rep]) for rep in reps}
        chosen = {}
        for rep in reps:
            u = scores[rep]
            chosen[rep] = EVAL if u < eval_fraction else DEV if u < eval_fraction + dev_fraction else TRAIN
        # Small inputs: still hold out one group for each non-empty fraction, lowest scores first.
        by_score = sorted(reps, key=lambda r: (scores[r], names[r]))
        for split, fraction, needed in ((EVAL, eval_fraction, 2), (DEV, dev_fraction, 3)):
            if fraction > 0 and len(reps) >= needed and split not in chosen.values():
                pick = next((r for r in by_score if chosen[r] == TRAIN), None)
                if pick is not None:
                    chosen[pick] = split
        for rep in reps:
            for k in members[rep]:
                out[k] = chosen[rep]
    counts["groups"] += len(reps)
    counts["multi_file_groups"] += sum(1 for r in reps if len(members[r]) > 1)
    for split in SPLITS:
        counts[f"{split}_files"] += sum(1 for s in out.values() if s == split)
    return out


def check_disjoint(splits: Mapping[int, str], groups: Mapping[int, int]) -> None:
    """Raise AssertionError if any near-duplicate group spans two splits (a guard the pipeline runs)."""
    seen: dict[int, str] = {}
    for key, split in splits.items():
        rep = groups[key]
        if seen.setdefault(rep, split) != split:
            raise AssertionError(f"near-duplicate group {rep} spans {seen[rep]} and {split}")
