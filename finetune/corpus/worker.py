"""The per-file work of the pipeline, run in worker processes: `prepare` (read, filter, redact, sign) and
`examples` (parse, select spans, render). Both are pure functions of one file plus read-only state, so a
distributed engine can run them as map steps (docs/corpus.md).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core import fim, languages
from finetune.corpus import dedup, filters, render, secrets, spans
from finetune.corpus.config import CorpusConfig
from finetune.corpus.context import related_files


@dataclass(frozen=True)
class WorkerState:
    """Read-only state every worker needs, installed once per process by `init`."""

    cfg: CorpusConfig
    fim_format: str
    tokenizer_file: str
    spool: str
    # repo -> directory -> training files (the only files offered as repository context)
    context_index: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # (repo, path) -> spool key of every kept file
    keys: dict[tuple[str, str], int] = field(default_factory=dict)


_STATE: WorkerState | None = None
_TOKENS: render.Tokens | None = None


def init(state: WorkerState) -> None:
    """Pool initializer: keep the state and load the tokenizer once per process."""
    global _STATE, _TOKENS
    from tokenizers import Tokenizer

    _STATE = state
    _TOKENS = render.Tokens(Tokenizer.from_file(state.tokenizer_file))


def spool_path(spool: str, key: int) -> str:
    return os.path.join(spool, f"{key:08d}.txt")


@dataclass(frozen=True)
class FileJob:
    key: int
    repo: str
    path: str
    abspath: str
    language: str


@dataclass(frozen=True)
class Prepared:
    key: int
    reason: str | None
    nbytes: int = 0
    exact: str = ""
    sig: bytes = b""
    secrets: dict[str, int] = field(default_factory=dict)


def prepare(job: FileJob) -> Prepared:
    """Read, filter, redact secrets, write the redacted text to the spool, and sign it for dedup."""
    state = _STATE
    assert state is not None, "worker.init was not called"
    cfg = state.cfg
    try:
        size = os.stat(job.abspath).st_size
        if size > cfg.max_file_bytes:
            return Prepared(job.key, "too_large", size)
        with open(job.abspath, "rb") as fh:
            data = fh.read(cfg.max_file_bytes + 1)
    except OSError:
        return Prepared(job.key, "unreadable")
    reason = filters.bytes_reason(data, cfg)
    if reason:
        return Prepared(job.key, reason, len(data))
    text = filters.decode(data)
    if text is None:
        return Prepared(job.key, "invalid_utf8", len(data))
    fmt = fim.get_format(state.fim_format)
    reason = filters.text_reason(text, cfg, (*fmt.sentinels, *fmt.extra_stops))
    if reason:
        return Prepared(job.key, reason, len(data))
    found: Counter = Counter()
    clean = secrets.redact(text, job.path, found)
    with open(spool_path(state.spool, job.key), "w", encoding="utf-8", newline="") as fh:
        fh.write(clean)
    return Prepared(job.key, None, len(data), dedup.normalized_hash(clean),
                    dedup.signature(clean, cfg.num_perm, cfg.shingle_size), dict(found))


@dataclass(frozen=True)
class ExampleJob:
    key: int
    repo: str
    path: str
    language: str
    split: str


def _read_spool(key: int) -> str:
    assert _STATE is not None
    with open(spool_path(_STATE.spool, key), encoding="utf-8", newline="") as fh:
        return fh.read()


def _context_files(job: ExampleJob, text: str, rng: random.Random) -> list[tuple[str, str]]:
    state = _STATE
    assert state is not None
    by_dir = state.context_index.get(job.repo, {})
    out = []
    for path in related_files(job.path, text, job.language, by_dir, rng, state.cfg.max_context_files):
        key = state.keys.get((job.repo, path))
        if key is not None:
            out.append((path, _read_spool(key)))
    return out


def examples(job: ExampleJob) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of one file for its split, and the counts of what happened."""
    state, tokens = _STATE, _TOKENS
    assert state is not None and tokens is not None, "worker.init was not called"
    cfg = state.cfg
    fmt = fim.get_format(state.fim_format)
    counts: Counter = Counter()
    text = _read_spool(job.key)
    rng = random.Random(f"{cfg.seed}\0{job.repo}\0{job.path}\0{job.split}")
    meta = render.RowMeta(job.repo, job.path, job.language, fmt.name)
    src = spans.parse_source(text, job.language, counts, languages.parse)
    is_train = job.split == "train"

    def ok(a: int, b: int) -> bool:
        return a == b or tokens.fits(text[a:b], cfg.max_middle_tokens)

    if is_train:
        objectives = [render.choose_objective(rng, cfg.fim_rate, cfg.spm_rate)
                      for _ in range(cfg.max_examples_per_file)]
        mix = cfg.span_mix
    else:
        objectives = ["psm"] * cfg.eval_examples_per_file
        mix = cfg.eval_span_mix
    fim_objectives = [o for o in objectives if o != "l2r"]
    chosen = spans.select_spans(src, len(fim_objectives), mix, rng, ok, counts, cfg.max_char_span,
                                cfg.min_prefix_chars)
    context_files: list[tuple[str, str]] | None = None

    def maybe_context():
        nonlocal context_files
        if not (is_train and fmt.has_repo_layout and rng.random() < cfg.context_rate):
            return None
        if context_files is None:
            context_files = _context_files(job, text, rng)
        if not context_files:
            return None
        return render.build_context(tokens, job.repo, job.path, context_files, cfg.max_context_tokens)

    rows: list[dict[str, Any]] = []
    for span, objective in zip(chosen, fim_objectives, strict=False):
        prefix = tokens.tail(text[: span.start], cfg.max_prefix_tokens)
        suffix = tokens.head(text[span.end:], cfg.max_suffix_tokens)
        rows.append(render.fim_row(fmt, meta, prefix, text[span.start:span.end], suffix, objective, span.kind,
                                   maybe_context()))
        counts[f"kind:{span.kind}"] += 1
    for _ in range(objectives.count("l2r")):
        starts = src.line_starts
        start = starts[rng.randrange(len(starts))] if len(text) > cfg.max_l2r_tokens * 2 else 0
        body = tokens.head(text[start:], cfg.max_l2r_tokens)
        if body.strip():
            rows.append(render.l2r_row(fmt, meta, body, maybe_context()))
            counts["kind:l2r"] += 1
    for row in rows:
        counts[f"objective:{row['objective']}"] += 1
        counts["has_context"] += int(row["has_context"])
    return rows, dict(counts)
