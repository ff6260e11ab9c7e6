"""The training split beyond memory: `datasets` reads the Parquet shards as memory-mapped Arrow, tokenizes them
with `map(batched=True, num_proc=N)` into its cache, and packing works on token counts alone; a batch's
sequences are read from the cache when the loop asks for them. Called by finetune/train.py.

The examples, their order, the packing and so the batches are exactly those of `data.tokenize_rows` +
`data.pack` on the whole split in memory (tested): what changes is that memory holds a few integers per
example (lengths, the packing order) instead of every row and every token list.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import fim
from finetune import data as D

log = logging.getLogger(__name__)

VERSION = 1  # part of the cache fingerprint: bump when `_tokenize_batch` changes what it writes
AUTO_PROCS_ROWS = 20_000  # below this many rows, tokenizing in this process beats starting a pool


def _tokenize_batch(batch: dict[str, list[Any]], tokenizer: Any, fmt_name: str, loss: str, seq_len: int,
                    objectives: Sequence[str], bos_id: int | None) -> dict[str, list[Any]]:
    """`data.tokenize_rows` for one batch of rows, one output row per example. A FIM row too long for
    `seq_len` is refit here (`refit`), or left as an empty `dropped` marker so that it is counted. `bos_id`:
    the BOS the server puts before every prompt, put before every example (context, never a target)."""
    fmt = fim.get_format(fmt_name)
    masked = D.sentinel_ids(tokenizer, fmt)
    out: dict[str, list[Any]] = {"ids": [], "labels": [], "length": [], "loss_tokens": [], "objective": [],
                                 "refit": [], "dropped": []}

    def encoded(ids: list[int], offsets: list[Any]) -> tuple[list[int], list[Any]]:
        return ([bos_id, *ids], [(0, 0), *offsets]) if bos_id is not None else (ids, offsets)

    def emit(row: dict[str, Any], ids: Sequence[int], offsets: Any, refit: bool) -> None:
        for ex in D.row_examples(row, ids, offsets, masked, loss, seq_len, bos=bos_id is not None):
            for key, value in (("ids", ex.ids), ("labels", ex.labels), ("length", len(ex.ids)),
                               ("loss_tokens", D.loss_tokens(ex.labels)), ("objective", row["objective"]),
                               ("refit", refit), ("dropped", False)):
                out[key].append(value)

    def drop(row: dict[str, Any]) -> None:
        for key, value in (("ids", []), ("labels", []), ("length", 0), ("loss_tokens", 0),
                           ("objective", row["objective"]), ("refit", False), ("dropped", True)):
            out[key].append(value)

    names = list(batch)
    rows = [r for r in (dict(zip(names, values, strict=True)) for values in zip(*batch.values(), strict=True))
            if r.get("objective") in objectives]
    if not rows:
        return out
    enc = tokenizer([r["text"] for r in rows], add_special_tokens=False, return_offsets_mapping=True)
    for row, raw_ids, raw_offsets in zip(rows, enc["input_ids"], enc["offset_mapping"], strict=True):
        ids, offsets = encoded(raw_ids, raw_offsets)
        if len(ids) <= seq_len or row["objective"] == "l2r":
            emit(row, ids, offsets, False)
            continue
        fitted = D.fit_row(row, fmt, tokenizer, seq_len)
        if fitted is None:
            drop(row)
            continue
        again = tokenizer(fitted["text"], add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded(again["input_ids"], again["offset_mapping"])
        if len(ids) > seq_len:
            drop(row)
        else:
            emit(fitted, ids, offsets, True)
    return out


def _features():
    from datasets import Features, Sequence, Value

    return Features({"ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                     "length": Value("int32"), "loss_tokens": Value("int32"), "objective": Value("string"),
                     "refit": Value("bool"), "dropped": Value("bool")})


def fingerprint(dataset: Path, tokenizer: Any, fmt_name: str, loss: str, seq_len: int,
                objectives: Sequence[str], bos_id: int | None = None) -> str:
    """The cache key of a tokenized split: the dataset's manifest, the tokenizer, and every setting that shapes
    an example (datasets would hash the tokenizer object itself, which is not stable across processes)."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    for part in (D.manifest_hash(dataset), backend.to_str() if backend is not None else repr(tokenizer),
                 fmt_name, loss, str(seq_len), ",".join(objectives), str(bos_id), str(VERSION)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


@dataclass
class Batch:
    input_ids: Any
    labels: Any
    position_ids: Any


class TrainSet:
    """Packed sequences over a tokenized split: sequence `i` is the examples `members[bounds[i]:bounds[i+1]]`
    (indices into `tokens`), read when a batch asks for it."""

    def __init__(self, tokens: Any, members: np.ndarray, bounds: np.ndarray, seq_len: int, pad_id: int) -> None:
        self.tokens = tokens
        # The memory-mapped Arrow columns themselves, chunk by chunk: `datasets`' row indexing formats rows one
        # by one (~0.1 s a batch), and a `take` on a column of thousands of chunks concatenates them first.
        ids, labels = tokens.data.column("ids"), tokens.data.column("labels")
        self._chunks = [(ids.chunk(i), labels.chunk(i)) for i in range(ids.num_chunks)]
        self._starts = np.cumsum([0] + [len(c) for c, _ in self._chunks])
        self._views: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.members, self.bounds, self.seq_len, self.pad_id = members, bounds, seq_len, pad_id

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def _example(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and labels of one example: numpy views of the mapped file (no copy)."""
        c = int(np.searchsorted(self._starts, index, side="right")) - 1
        view = self._views.get(c)
        if view is None:
            ids, labels = self._chunks[c]
            # `offsets` index into `values` (which ignores a chunk's own slice offset): both zero-copy.
            view = self._views[c] = (ids.offsets.to_numpy(), ids.values.to_numpy(), labels.offsets.to_numpy(),
                                     labels.values.to_numpy())
        ids_off, ids_v, labels_off, labels_v = view
        i = index - int(self._starts[c])
        return ids_v[ids_off[i]:ids_off[i + 1]], labels_v[labels_off[i]:labels_off[i + 1]]

    def batch(self, seqs: Sequence[int]) -> Batch:
        """Input ids, labels and position ids of these sequences, as `data.pack` lays them out."""
        import torch

        n = len(seqs)
        ids = np.full((n, self.seq_len), self.pad_id, dtype=np.int64)
        labels = np.full((n, self.seq_len), D.IGNORE, dtype=np.int64)
        pos = np.zeros((n, self.seq_len), dtype=np.int64)
        for row, s in enumerate(seqs):
            at = 0
            for index in self.members[self.bounds[s]:self.bounds[s + 1]]:
                ex_ids, ex_labels = self._example(int(index))
                k = len(ex_ids)
                ids[row, at:at + k] = ex_ids
                labels[row, at:at + k] = ex_labels
                labels[row, at] = D.IGNORE  # an example's first token is predicted from the one before it
                pos[row, at:at + k] = np.arange(k)
                at += k
            if at < self.seq_len:
                pos[row, at:] = np.arange(self.seq_len - at)
        return Batch(torch.from_numpy(ids), torch.from_numpy(labels), torch.from_numpy(pos))


def _pack_bounds(lengths: np.ndarray, seq_len: int, packing: bool) -> np.ndarray:
    """`data.pack`'s greedy rule on lengths in pack order: where each sequence starts, plus the end."""
    bounds = [0]
    used = 0
    for i, length in enumerate(lengths.tolist()):
        if i > bounds[-1] and (not packing or used + length > seq_len):
            bounds.append(i)
            used = 0
        used += length
    bounds.append(len(lengths))
    return np.asarray(bounds if len(lengths) else [0], dtype=np.int64)


def load(dataset: str | Path, tokenizer: Any, fmt: fim.FimFormat, *, loss: str, seq_len: int,
         objectives: Sequence[str], pad_id: int, packing: bool = True, seed: int = 0, bos_id: int | None = None,
         num_proc: int = 0, cache_dir: str | None = None) -> tuple[TrainSet, D.TokenStats]:
    """The train split tokenized (cached) and packed. `num_proc` 0: one process under AUTO_PROCS_ROWS rows,
    else every core; `cache_dir` None: datasets' own cache ($HF_DATASETS_CACHE)."""
    import pyarrow.compute as pc
    from datasets import load_dataset

    from core.errors import CorpusError

    dataset = Path(dataset)
    files = [str(p) for p in D.shard_files(dataset, "train")]
    if not files:
        raise CorpusError(f"dataset {str(dataset)!r} has no train/*.parquet shards")
    try:
        rows = load_dataset("parquet", data_files={"train": files}, split="train", cache_dir=cache_dir)
    except Exception as exc:  # datasets and pyarrow raise several types for a bad or truncated shard
        raise CorpusError(f"{dataset}/train: not readable Parquet shards with the needed columns: {exc}") from exc
    missing = [c for c in D.TRAIN_COLUMNS if c not in rows.column_names]
    if missing:
        raise CorpusError(f"{dataset}/train: the shards lack the columns {missing}")
    rows = rows.select_columns(list(D.TRAIN_COLUMNS))
    wanted = tuple(objectives)
    if num_proc <= 0:
        num_proc = 1 if len(rows) < AUTO_PROCS_ROWS else min(os.cpu_count() or 1, 8)
    tokens = rows.map(
        _tokenize_batch, batched=True, batch_size=512, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=rows.column_names, features=_features(),
        fn_kwargs={"tokenizer": tokenizer, "fmt_name": fmt.name, "loss": loss, "seq_len": seq_len,
                   "objectives": wanted, "bos_id": bos_id},
        new_fingerprint=fingerprint(dataset, tokenizer, fmt.name, loss, seq_len, wanted, bos_id), desc="tokenize")
    table = tokens.data  # memory-mapped; these columns are a few bytes per example
    length = table.column("length").to_numpy()
    refit = table.column("refit").to_numpy(zero_copy_only=False)
    dropped = table.column("dropped").to_numpy(zero_copy_only=False)
    # data.tokenize_rows's order: the examples of rows that fit, then those of refit rows.
    examples = np.concatenate([np.flatnonzero(~dropped & ~refit), np.flatnonzero(~dropped & refit)])
    stats = D.TokenStats(rows=sum(int(c["counts"]) for c in pc.value_counts(rows.data.column("objective"))
                                  .to_pylist() if c["values"] in wanted),
                         examples=len(examples), tokens=int(length[examples].sum()),
                         loss_tokens=int(table.column("loss_tokens").to_numpy()[examples].sum()),
                         dropped_too_long=int(dropped.sum()), refit=int((refit & ~dropped).sum()))
    if len(examples):
        taken = pc.value_counts(pc.take(table.column("objective"), examples)).to_pylist()
        stats.by_objective = {c["values"]: int(c["counts"]) for c in taken}
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)  # data.pack's shuffle, draw for draw
    members = examples[np.asarray(order, dtype=np.int64)] if order else examples
    del order
    bounds = _pack_bounds(length[members], seq_len, packing)
    log.info("train split: %d rows, %d examples in %d sequences (tokenized with %d processes, cache %s)",
             stats.rows, stats.examples, len(bounds) - 1, num_proc, tokens.cache_files[0]["filename"]
             if tokens.cache_files else "in memory")
    return TrainSet(tokens, members, bounds, seq_len, pad_id), stats


def objective_counts(dataset: str | Path) -> dict[str, dict[str, int]]:
    """Per objective, the train rows and those carrying repository context, read a batch at a time (what
    `train._primary_mode` needs, without the rows)."""
    import pyarrow.parquet as pq

    out: dict[str, dict[str, int]] = {}
    for path in D.shard_files(dataset, "train"):
        reader = pq.ParquetFile(path)
        columns = [c for c in ("objective", "has_context") if c in reader.schema_arrow.names]
        for batch in reader.iter_batches(columns=columns):
            objective = batch.column("objective").to_pylist()
            context = (batch.column("has_context").to_pylist() if "has_context" in columns
                       else [False] * len(objective))
            for o, c in zip(objective, context, strict=True):
                entry = out.setdefault(o, {"rows": 0, "context": 0})
                entry["rows"] += 1
                entry["context"] += int(bool(c))
    return out
