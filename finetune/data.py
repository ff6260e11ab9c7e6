"""Training data: read the corpus dataset (Parquet shards), tokenize, mask the loss, pack, and order batches.

Called by finetune/train.py (and the exam for the manifest). Every row is tokenized as one text (prefix and
middle jointly, as the model sees them when token healing re-types the cursor's last token at inference).
Packed sequences carry position ids that restart at 0 for each example: transformers then builds a
block-diagonal causal mask, so one example never attends to another. The batch order is a pure function of
(seed, epoch, step), which is what makes `--resume` continue with the same data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import fim
from core.completion.profile import BosPolicy
from core.errors import CorpusError

log = logging.getLogger(__name__)

IGNORE = -100
SPLITS = ("train", "dev", "eval", "files")


def manifest_path(dataset: str | Path) -> Path:
    return Path(dataset) / "manifest.json"


def read_manifest(dataset: str | Path) -> dict[str, Any]:
    """The dataset's manifest.json; CorpusError when the directory is not a dataset."""
    path = manifest_path(dataset)
    if not path.is_file():
        raise CorpusError(f"{str(dataset)!r} is not an inhouse dataset (no manifest.json; build one with "
                          "`inhouse corpus build`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: must hold a JSON object")
    return data


def manifest_hash(dataset: str | Path) -> str:
    """sha256 of manifest.json: names the exact dataset an adapter was trained on."""
    return hashlib.sha256(manifest_path(dataset).read_bytes()).hexdigest()


def dataset_fim_format(dataset: str | Path) -> str | None:
    return read_manifest(dataset).get("fim_format")


def shard_files(dataset: str | Path, split: str) -> list[Path]:
    return sorted((Path(dataset) / split).glob("*.parquet"))


def load_rows(dataset: str | Path, split: str, columns: Sequence[str] | None = None,
              required: bool = True) -> list[dict[str, Any]]:
    """Every row of a split, in shard order, as dicts."""
    import pyarrow.parquet as pq

    files = shard_files(dataset, split)
    if not files:
        if required:
            raise CorpusError(f"dataset {str(dataset)!r} has no {split}/*.parquet shards")
        return []
    rows: list[dict[str, Any]] = []
    for path in files:
        try:
            table = pq.read_table(path, columns=list(columns) if columns else None)
        except Exception as exc:  # pyarrow raises several types for a bad or truncated file
            raise CorpusError(f"{path}: not a readable Parquet shard with the needed columns: {exc}") from exc
        rows.extend(table.to_pylist())
    return rows


TRAIN_COLUMNS = ("text", "objective", "prompt_chars", "prefix", "middle", "suffix")


@dataclass
class TokenStats:
    rows: int = 0
    examples: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    dropped_too_long: int = 0
    refit: int = 0
    by_objective: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    ids: list[int]
    labels: list[int]


def sentinel_ids(tokenizer, fmt: fim.FimFormat) -> set[int]:
    """Token ids of the format's sentinels that are masked out of the loss (the end token is kept: it teaches
    the model to stop)."""
    out = set()
    for s in fmt.sentinels:
        if s == fmt.eot:
            continue
        tid = tokenizer.convert_tokens_to_ids(s)
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            out.add(tid)
    return out


def bos_token_id(tokenizer, policy: BosPolicy) -> int | None:
    """The token the profile's BOS rule puts before every prompt (the one the tokenizer adds with its special
    tokens: CodeLlama's <s>), or None: SmolLM2 adds none, and BosPolicy.NONE never adds one."""
    if not policy.add_special_tokens:
        return None
    with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    if len(with_special) > len(bare) and with_special[0] == tokenizer.bos_token_id:
        return int(with_special[0])
    return None


def tokenize_rows(rows: Sequence[dict[str, Any]], tokenizer, fmt: fim.FimFormat, loss: str, seq_len: int,
                  objectives: Iterable[str] = ("psm", "spm", "l2r"), *, bos_id: int | None = None
                  ) -> tuple[list[Example], TokenStats]:
    """Tokenize rows into examples with loss labels.

    loss="full": every token is a target except the FIM sentinels. loss="middle": only the tokens that end after
    the prompt (`prompt_chars`) are targets, so the token that straddles the cursor is learned, as healing asks;
    left-to-right rows have no middle and keep the full loss. FIM rows longer than `seq_len` are re-rendered by
    `fit_row` with their prefix and suffix cut as at inference (dropped only when the middle leaves no room);
    left-to-right rows are split into `seq_len` windows.
    """
    wanted = set(objectives)
    rows = [r for r in rows if r.get("objective") in wanted]
    stats = TokenStats(rows=len(rows))
    if not rows:
        return [], stats
    masked = sentinel_ids(tokenizer, fmt)
    examples: list[Example] = []
    pending = list(rows)
    for attempt in range(2):
        too_long = []
        for start in range(0, len(pending), 512):
            part = pending[start:start + 512]
            enc = tokenizer([r["text"] for r in part], add_special_tokens=False, return_offsets_mapping=True)
            for row, ids, offsets in zip(part, enc["input_ids"], enc["offset_mapping"], strict=True):
                if bos_id is not None:  # as the server encodes the prompt: the BOS is context, never a target
                    ids, offsets = [bos_id, *ids], [(0, 0), *offsets]
                objective = row["objective"]
                if len(ids) > seq_len and objective != "l2r":
                    too_long.append(row)
                    continue
                for ex in row_examples(row, ids, offsets, masked, loss, seq_len, bos=bos_id is not None):
                    examples.append(ex)
                    stats.examples += 1
                    stats.tokens += len(ex.ids)
                    stats.loss_tokens += loss_tokens(ex.labels)
                    stats.by_objective[objective] = stats.by_objective.get(objective, 0) + 1
        if attempt == 0:
            pending = [f for f in (fit_row(r, fmt, tokenizer, seq_len) for r in too_long) if f is not None]
            stats.refit += len(pending)
            stats.dropped_too_long += len(too_long) - len(pending)
        else:
            stats.dropped_too_long += len(too_long)
            stats.refit -= len(too_long)
    return examples, stats


def row_examples(row: dict[str, Any], ids: Sequence[int], offsets: Sequence[tuple[int, int]], masked: set[int],
                 loss: str, seq_len: int, bos: bool = False) -> list[Example]:
    """The examples of one tokenized row that fits (`tokenize_rows`, and `trainset` batch by batch): loss labels
    as `tokenize_rows` says, a left-to-right row cut into `seq_len` windows (windows under 2 tokens dropped).
    `bos`: `ids` start with the BOS the server puts before a prompt, context and never a target."""
    objective = row["objective"]
    cut = int(row.get("prompt_chars") or 0)
    ids_a = np.asarray(ids, dtype=np.int64)
    target = ~np.isin(ids_a, np.fromiter(masked, dtype=np.int64, count=len(masked)))
    if bos and len(target):
        target[0] = False
    if loss == "middle" and objective != "l2r":
        ends = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[:, 1]
        target &= ends > cut
    labels = np.where(target, ids_a, IGNORE).tolist()
    ids = ids_a.tolist()
    out = []
    for i in range(0, len(ids), seq_len):
        pid, plab = ids[i:i + seq_len], labels[i:i + seq_len]
        if len(pid) >= 2:
            out.append(Example(list(pid), list(plab)))
    return out


def loss_tokens(labels: Sequence[int]) -> int:
    """Targets of an example (its first label is never one: packing masks it)."""
    return sum(1 for x in labels[1:] if x != IGNORE)


def fit_row(row: dict[str, Any], fmt: fim.FimFormat, tokenizer, seq_len: int) -> dict[str, Any] | None:
    """A FIM row too long for `seq_len`, re-rendered with its prefix and suffix cut to fit, exactly as the
    language server's prompt builder cuts them at inference (`core.completion.prompt.build_prompt`, no
    repository context). None when the middle alone leaves no room."""
    from core.completion.prompt import PromptBudget, build_prompt

    middle = row.get("middle", "")
    middle_tokens = len(tokenizer(middle + fmt.eot, add_special_tokens=False)["input_ids"])
    room = seq_len - middle_tokens - 2
    if room < 32:
        return None
    counter = getattr(tokenizer, "backend_tokenizer", tokenizer)
    built = build_prompt(row["prefix"], row["suffix"], fmt, budget=PromptBudget(max_prompt_tokens=room),
                         tokenizer=counter, mode=row["objective"], heal=False)
    return dict(row, text=built.prompt + middle + fmt.eot, prompt_chars=len(built.prompt), has_context=False)


@dataclass
class Packed:
    """Fixed-length sequences: input ids, labels and position ids as (N, seq_len) tensors."""

    input_ids: Any
    labels: Any
    position_ids: Any

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def pack(examples: Sequence[Example], seq_len: int, pad_id: int, packing: bool = True, seed: int = 0) -> Packed:
    """Pack examples (shuffled once with `seed`) greedily into sequences, or pad one example per sequence.

    Each example's first label is masked (it would be predicted from the previous example) and its position ids
    restart at 0; the padding tail is a segment of its own with no loss.
    """
    import torch

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    seqs: list[list[Example]] = []
    current: list[Example] = []
    used = 0
    for i in order:
        ex = examples[i]
        if current and (not packing or used + len(ex.ids) > seq_len):
            seqs.append(current)
            current, used = [], 0
        current.append(ex)
        used += len(ex.ids)
    if current:
        seqs.append(current)
    n = len(seqs)
    ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((n, seq_len), IGNORE, dtype=torch.long)
    pos = torch.zeros((n, seq_len), dtype=torch.long)
    for row, group in enumerate(seqs):
        at = 0
        for ex in group:
            k = len(ex.ids)
            ids[row, at:at + k] = torch.tensor(ex.ids)
            lab = torch.tensor(ex.labels)
            lab[0] = IGNORE
            labels[row, at:at + k] = lab
            pos[row, at:at + k] = torch.arange(k)
            at += k
        if at < seq_len:
            pos[row, at:] = torch.arange(seq_len - at)
    return Packed(ids, labels, pos)


def spm_text(row: dict[str, Any], fmt: fim.FimFormat) -> str:
    """A PSM dev row re-rendered in SPM order, keeping the repository context its text carries."""
    text, prefix, middle, suffix = row["text"], row["prefix"], row["middle"], row["suffix"]
    opener = fmt.prefix + fmt.psm_prefix_sep
    tail = fmt.render_example(prefix, middle, suffix, fim.FimMode.PSM)[len(opener):]
    head, lead = "", ""
    i = text.find(fmt.prefix)
    if i >= 0:
        body = text[i + len(opener):]
        if body.endswith(tail):
            head, lead = text[:i], body[:len(body) - len(tail)]
    return head + lead + fmt._fim(prefix, suffix, fim.FimMode.SPM) + middle + fmt.eot


def dev_rows_in(rows: Sequence[dict[str, Any]], fmt: fim.FimFormat, objective: str) -> list[dict[str, Any]]:
    """Dev rows (PSM in the dataset) rendered in the given FIM objective, with their prompt length."""
    if objective == "psm":
        return [dict(r, objective="psm") for r in rows]
    out = []
    for r in rows:
        text = spm_text(r, fmt)
        out.append(dict(r, text=text, objective="spm", prompt_chars=len(text) - len(r["middle"]) - len(fmt.eot)))
    return out


@dataclass(frozen=True)
class BatchPlan:
    """Which sequences each rank reads at each micro-step: a pure function of (seed, epoch, step)."""

    sequences: int
    batch_size: int
    grad_accum: int
    world_size: int
    seed: int

    @property
    def per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.sequences // self.per_step

    def order(self, epoch: int) -> list[int]:
        return list(_epoch_order(self.sequences, self.seed, epoch))

    def indices(self, step: int, micro: int, rank: int) -> list[int]:
        epoch, within = divmod(step, self.steps_per_epoch)
        start = ((within * self.grad_accum + micro) * self.world_size + rank) * self.batch_size
        return list(_epoch_order(self.sequences, self.seed, epoch)[start:start + self.batch_size])


@functools.lru_cache(maxsize=4)
def _epoch_order(sequences: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(sequences))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return tuple(order)


def batch_hash(input_ids) -> str:
    """A short fingerprint of a batch's tokens (metrics.jsonl records it: resume checks the data order)."""
    return hashlib.sha256(input_ids.cpu().numpy().tobytes()).hexdigest()[:16]
