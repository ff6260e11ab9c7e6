"""Per-request choice of the next token: penalties, the healing constraint, temperature/top-k/top-p, seeded draws.

TGI's rule: sampling happens when `do_sample` is set or any warper is active (temperature != 1, top_k, top_p < 1);
otherwise the choice is greedy. Called by `server.engine` for each row of a batched forward.
"""

from __future__ import annotations

import random

import torch

from server.generation import SamplingParams  # noqa: F401  (re-exported)


class Sampler:
    """The state of one sequence's sampling (its random generator and the seed it reports)."""

    def __init__(self, params: SamplingParams, device: torch.device) -> None:
        self.params = params
        self.seed: int | None = None
        self._generator: torch.Generator | None = None
        if params.sampling:
            self.seed = params.seed if params.seed is not None else random.randrange(2**63)
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)

    def choose(self, logits: torch.Tensor, previous: torch.Tensor | None,
               allowed: list[int] | None) -> tuple[int, float]:
        """Pick a token from one row of logits (float, shape [vocab]); returns (id, log-probability)."""
        p = self.params
        scores = logits
        if previous is not None and previous.numel():
            if p.repetition_penalty is not None and p.repetition_penalty != 1.0:
                prev = previous.unique()
                picked = scores[prev]
                scores = scores.clone()
                scores[prev] = torch.where(picked < 0, picked * p.repetition_penalty, picked / p.repetition_penalty)
            if p.frequency_penalty:
                ids, counts = previous.unique(return_counts=True)
                scores = scores.clone()
                scores[ids] -= p.frequency_penalty * counts.to(scores.dtype)
        if allowed:
            masked = torch.full_like(scores, float("-inf"))
            idx = torch.tensor(allowed, dtype=torch.long, device=scores.device)
            masked[idx] = scores[idx]
            scores = masked
        if not p.sampling:
            token = int(torch.argmax(scores))
            return token, float(torch.log_softmax(scores, dim=-1)[token])
        if p.temperature is not None and p.temperature != 1.0:
            scores = scores / p.temperature
        if p.top_k:
            k = min(p.top_k, scores.numel())
            kth = torch.topk(scores, k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if p.top_p is not None and p.top_p < 1.0:
            sorted_scores, order = torch.sort(scores, descending=True)
            cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
            drop = cumulative > p.top_p
            drop[1:] = drop[:-1].clone()  # keep the token that crosses the threshold
            drop[0] = False
            scores = scores.clone()
            scores[order[drop]] = float("-inf")
        logprobs = torch.log_softmax(scores, dim=-1)
        token = int(torch.multinomial(logprobs.exp(), 1, generator=self._generator))
        return token, float(logprobs[token])
