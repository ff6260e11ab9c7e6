"""Prompt-lookup drafts for speculative decoding: completions often copy from their prompt (names, call patterns).

`prompt_lookup(history, k)` finds the most recent earlier occurrence of the last few tokens and proposes the
tokens that followed it. The engine checks a draft with one forward over all of its tokens and keeps the
prefix its own sampler agrees with, so the output is the one token-by-token decoding gives (the same sampler
draws, in the same order); a forward over a few tokens costs little more than over one on a CPU.
Used by `server.engine` when one sequence is decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_NGRAM = 4
MIN_NGRAM = 3  # a 2-token match (`self .`) guesses wrong too often to pay for the wider forward


def prompt_lookup(history: Sequence[int], k: int, max_ngram: int = MAX_NGRAM, min_ngram: int = MIN_NGRAM) -> list[int]:
    """Up to k tokens that followed the latest earlier occurrence of the longest matching tail n-gram ([] if none)."""
    n_hist = len(history)
    if k <= 0:
        return []
    for n in range(min(max_ngram, n_hist - 1), min_ngram - 1, -1):
        tail = list(history[n_hist - n:])
        # the latest occurrence that ends before the tail itself and has at least one token after it
        for start in range(n_hist - n - 1, -1, -1):
            if history[start] == tail[0] and list(history[start:start + n]) == tail:
                follow = list(history[start + n:start + n + k])
                if follow:
                    return follow
    return []
