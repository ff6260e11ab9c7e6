"""Key/value caches: the batch's left-padded cache, and the per-adapter cache of recent prompts for prefix reuse.

A batch keeps one `DynamicCache` whose rows are left-padded to a common length (the attention mask marks the
padding; each row's position ids are its own length), so rows of different lengths decode in one forward.
`PrefixCache` keeps the prompt key/values of the last few requests per adapter: a prompt that extends one of
them (a user typing) only computes its new tokens. Tensors are never modified in place, so a stored entry
stays valid while the batch that started from it grows. Used by `server.engine`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape [batch, heads, length, dim]


def layers_of(cache) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def new_cache(kv: KV | None = None):
    """A `DynamicCache`, filled from per-layer tensors when given (they are copied, never aliased)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=kv) if kv else DynamicCache()


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    if n == 0:
        return t
    pad = torch.zeros((t.shape[0], t.shape[1], n, t.shape[3]), dtype=t.dtype, device=t.device)
    return torch.cat([pad, t], dim=2)


def append_rows(cache, mask: torch.Tensor, other, other_mask: torch.Tensor) -> torch.Tensor:
    """Add the rows of `other` (a cache) to `cache` in place, left-padding both; returns the new mask."""
    length, other_length = mask.shape[1], other_mask.shape[1]
    total = max(length, other_length)
    for layer, extra in zip(cache.layers, other.layers, strict=True):
        layer.keys = torch.cat([_left_pad(layer.keys, total - length), _left_pad(extra.keys, total - other_length)])
        layer.values = torch.cat([_left_pad(layer.values, total - length),
                                  _left_pad(extra.values, total - other_length)])
    pad = lambda m, n: torch.cat([torch.zeros((m.shape[0], n), dtype=m.dtype, device=m.device), m], dim=1)  # noqa: E731
    return torch.cat([pad(mask, total - length), pad(other_mask, total - other_length)])


def keep_rows(cache, mask: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
    """Keep only the rows `keep` of `cache` (in place) and drop padding columns no row needs; returns the mask."""
    index = torch.tensor(list(keep), dtype=torch.long, device=mask.device)
    mask = mask.index_select(0, index)
    used = mask.any(dim=0).nonzero()
    start = int(used[0]) if used.numel() else mask.shape[1]
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, start:]
        layer.values = layer.values.index_select(0, index)[:, :, start:]
    return mask[:, start:]


class PrefixCache:
    """The prompt key/values of the last `entries` requests per adapter; lookup finds the longest shared prefix."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._store: dict[str | None, OrderedDict[tuple[int, ...], KV]] = {}

    def store(self, adapter: str | None, ids: Sequence[int], kv: KV) -> None:
        if self.entries <= 0:
            return
        bucket = self._store.setdefault(adapter, OrderedDict())
        key = tuple(ids)
        bucket.pop(key, None)
        bucket[key] = kv
        # A prompt that is a prefix of the new one is now redundant: the new entry serves it too.
        for old in [k for k in bucket if k != key and len(k) <= len(key) and key[:len(k)] == k]:
            del bucket[old]
        while len(bucket) > self.entries:
            bucket.popitem(last=False)

    def lookup(self, adapter: str | None, ids: Sequence[int]) -> tuple[int, KV | None]:
        """(tokens reusable, their key/values); always leaves at least one token of `ids` to compute."""
        bucket = self._store.get(adapter)
        if not bucket or len(ids) < 2:
            return 0, None
        best, best_kv, best_key = 0, None, None
        for key, kv in bucket.items():
            n = _common_prefix(key, ids)
            if n > best:
                best, best_kv, best_key = n, kv, key
        best = min(best, len(ids) - 1)
        if best <= 0 or best_kv is None or best_key is None:
            return 0, None
        bucket.move_to_end(best_key)
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in best_kv]

    def clear(self, adapter: str | None = None) -> None:
        self._store.pop(adapter, None)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
