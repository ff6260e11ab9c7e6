"""The per-file work of the pipeline, run in worker processes: `prepare` (read, filter, redact, sign) and
`examples` (parse, select spans, render). Both are pure functions of one file plus read-only state, so a
distributed engine can run them as map steps (docs/corpus.md). With a cache (`cache.py`), what `prepare` computes
and the spans `examples` chooses are read back for a file whose bytes were seen before.
"""

from __future__ import annotations

import functools
import os
import random
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core import fim, languages
from finetune.corpus import cache as cache_mod
from finetune.corpus import clone, dedup, filters, render, secrets, spans, spool
from finetune.corpus.config import CorpusConfig
from finetune.corpus.context import related_files
from finetune.corpus.spool import Location
from finetune.corpus.texthash import TextArrays
from finetune.corpus.tokencount import WordCounter, WordIndex


@dataclass(frozen=True)
class WorkerState:
    """Read-only state every worker needs, installed once per process by `init`."""

    cfg: CorpusConfig
    fim_format: str
    tokenizer_file: str
    spool: str
    # repo -> directory -> training files (the only files offered as repository context)
    context_index: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # (repo, path) -> spool location of every training file
    locations: dict[tuple[str, str], Location] = field(default_factory=dict)
    # the per-file cache (`--cache DIR`), or None
    cache: cache_mod.Fingerprints | None = None
    # repo -> (git URL, commit) of each repository given by URL: its files are read from this host's clone
    clones: dict[str, tuple[str, str]] = field(default_factory=dict)


_STATE: WorkerState | None = None
_TOKENS: render.Tokens | None = None
_COUNTER: WordCounter | None = None
_READER: spool.Reader | None = None
_WRITER: spool.Writer | None = None
_BARRIER: Any = None  # a pool's `multiprocessing.Barrier`, for `install`


@functools.cache
def load_tokenizer(path: str):
    """The tokenizer, loaded once per process (the parent loads it before forking: children inherit it)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


@functools.cache
def load_counter(path: str) -> WordCounter:
    """The word-count cache of the tokenizer, built once per process (inherited by forked workers)."""
    return WordCounter(load_tokenizer(path))


def init(state: WorkerState, barrier: Any = None) -> None:
    """Pool initializer: keep the state, the tokenizer and its word counter."""
    global _STATE, _TOKENS, _COUNTER, _READER, _WRITER, _BARRIER
    _STATE, _BARRIER = state, barrier
    _TOKENS = render.Tokens(load_tokenizer(state.tokenizer_file))
    _COUNTER = load_counter(state.tokenizer_file)
    _READER = spool.Reader(state.spool, _COUNTER)
    _WRITER = spool.Writer(state.spool)


def install(state: WorkerState) -> None:
    """New state for this worker (the examples pass's), its caches kept. A pool sends one call per worker,
    and each waits here until all have theirs, so that no worker takes two."""
    init(state, _BARRIER)
    if _BARRIER is not None:
        _BARRIER.wait(timeout=600)


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
    location: spool.Location | None = None
    blob: str = ""  # git blob id of the bytes read (with a cache only)
    cached: bool = False  # taken from the cache, not processed


def _prepare_key(cache: cache_mod.Fingerprints, blob: str, path: str) -> str:
    # The redaction reads the file name for its file type (detect-secrets: the extension), nothing else of it.
    return cache.key(cache_mod.PREPARE, blob, os.path.splitext(path)[1])


def _cached_prepare(job: FileJob, cache: cache_mod.Fingerprints, blob: str) -> Prepared | None:
    entry = cache.get(cache_mod.PREPARE, _prepare_key(cache, blob, job.path))
    if entry is None:
        return None
    head, payload = entry
    if head["reason"]:
        return Prepared(job.key, head["reason"], head["nbytes"], blob=blob, cached=True)
    n_sig, n_index = head["sig"], head["index"]
    assert _WRITER is not None
    location = _WRITER.write_bytes(cache_mod.unpack_index(payload[n_sig:n_sig + n_index]), payload[n_sig + n_index:])
    return Prepared(job.key, None, head["nbytes"], head["exact"], payload[:n_sig], head["secrets"], location,
                    blob, True)


def prepare(job: FileJob) -> Prepared:
    """Read, filter, redact secrets, write the redacted text to the spool, and sign it for dedup; with a cache,
    a file whose bytes were seen before is taken from it."""
    state = _STATE
    assert state is not None, "worker.init was not called"
    cfg = state.cfg
    abspath = job.abspath
    if job.repo in state.clones:  # cloned on this host when it has no clone yet (another node surveyed it)
        url, sha = state.clones[job.repo]
        abspath = os.path.join(clone.checkout(clone.root_of(cfg.clone_dir), job.repo, url, sha), job.path)
    try:
        size = os.stat(abspath).st_size
        if size > cfg.max_file_bytes:
            return Prepared(job.key, "too_large", size)
        with open(abspath, "rb") as fh:
            data = fh.read(cfg.max_file_bytes + 1)
    except OSError:
        return Prepared(job.key, "unreadable")
    cache, blob = state.cache, ""
    if cache is not None:
        blob = cache_mod.blob_id(data)
        hit = _cached_prepare(job, cache, blob)
        if hit is not None:
            return hit

    def done(reason: str) -> Prepared:
        if cache is not None:
            cache.put(cache_mod.PREPARE, _prepare_key(cache, blob, job.path), {"reason": reason, "nbytes": len(data)})
        return Prepared(job.key, reason, len(data), blob=blob)

    reason = filters.bytes_reason(data, cfg)
    if reason:
        return done(reason)
    text = filters.decode(data)
    if text is None:
        return done("invalid_utf8")
    fmt = fim.get_format(state.fim_format)
    reason = filters.text_reason(text, cfg, (*fmt.sentinels, *fmt.extra_stops))
    if reason:
        return done(reason)
    found: Counter = Counter()
    clean = secrets.redact(text, job.path, found)
    # Code points and hash prefix sums once, for both the word index and the dedup signature.
    arrays = TextArrays.of(clean)
    # Each file is split into words once, here: its examples and every row showing it as context reuse it.
    index = (WordIndex.build(_COUNTER, clean, arrays) if cfg.token_budgets == "exact" and _COUNTER is not None
             else None)
    assert _WRITER is not None
    index_bytes, text_bytes = index.to_bytes() if index is not None else b"", clean.encode("utf-8")
    location = _WRITER.write_bytes(index_bytes, text_bytes)
    out = Prepared(job.key, None, len(data), dedup.normalized_hash(clean),
                   dedup.signature(clean, cfg.num_perm, cfg.shingle_size, arrays), dict(found), location, blob)
    if cache is not None:
        packed = cache_mod.pack_index(index_bytes)
        cache.put(cache_mod.PREPARE, _prepare_key(cache, blob, job.path),
                  {"reason": None, "nbytes": out.nbytes, "exact": out.exact, "secrets": out.secrets,
                   "sig": len(out.sig), "index": len(packed)}, out.sig + packed + text_bytes)
    return out


CACHE_HIT = "cache:spans"  # in the counts `examples` returns: the file's spans came from the cache


@dataclass(frozen=True)
class ExampleJob:
    key: int
    repo: str
    path: str
    language: str
    split: str
    location: spool.Location
    blob: str = ""  # git blob id (with a cache only)


def _context_files(job: ExampleJob, text: str, rng: random.Random) -> list[tuple[str, str, WordIndex | None]]:
    state = _STATE
    assert state is not None
    by_dir = state.context_index.get(job.repo, {})
    out = []
    assert _READER is not None
    for path in related_files(job.path, text, job.language, by_dir, rng, state.cfg.max_context_files):
        loc = state.locations.get((job.repo, path))
        if loc is not None:
            out.append((path, *_READER.get(loc)))
    return out


def _choose_spans(src: spans.Source, file_tokens: Any, tokens: render.Tokens, is_train: bool, cfg: CorpusConfig,
                  rng: random.Random, counts: Counter) -> tuple[list[str], list[spans.Span]]:
    """The file's row objectives and the middles of its FIM rows: the part of `examples` that is a function of
    the file alone (its text, split and the seed), so the cache keeps it."""
    cap = cfg.max_middle_tokens

    def ok(a: int, b: int) -> bool:
        # Middles are counted exactly: by the word index, or (estimated budgets) by encoding them.
        if a == b:
            return True
        if b - a > cap * render.MAX_CHARS_PER_TOKEN:
            return False
        if isinstance(file_tokens, WordIndex):
            return file_tokens.count(a, b) <= cap
        return file_tokens.count(a, b) <= cap * 2 and tokens.fits(src.text[a:b], cap)

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
    return objectives, chosen


def examples(job: ExampleJob) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of one file for its split, and the counts of what happened."""
    state, tokens = _STATE, _TOKENS
    assert state is not None and tokens is not None and _COUNTER is not None, "worker.init was not called"
    cfg = state.cfg
    fmt = fim.get_format(state.fim_format)
    counts: Counter = Counter()
    assert _READER is not None
    text, index = _READER.get(job.location)
    rng = random.Random(f"{cfg.seed}\0{job.repo}\0{job.path}\0{job.split}")
    meta = render.RowMeta(job.repo, job.path, job.language, fmt.name)
    is_train = job.split == "train"
    file_tokens = index or render.file_tokens(_COUNTER, tokens, text, cfg.token_budgets,
                                              random.Random(f"{cfg.seed}\0{job.path}"))
    cache = state.cache if job.blob else None
    key = cache.key(cache_mod.SPANS, job.blob, job.repo, job.path, job.split, job.language) if cache else ""
    entry = cache.get(cache_mod.SPANS, key) if cache else None
    if entry is not None:
        # The file's objectives and spans as chosen before, and the random state they left: the rows below
        # draw exactly what they drew then. No parse: the rows need only the line starts.
        head, payload = entry
        objectives, counts = head["objectives"], Counter(head["counts"])
        chosen = [spans.Span(a, b, kind) for a, b, kind in head["spans"]]
        rng.setstate((head["rng_version"], tuple(array("I", payload)), head["rng_gauss"]))
        src = spans.Source(text, job.language)
    else:
        src = spans.parse_source(text, job.language, counts, languages.parse)
        objectives, chosen = _choose_spans(src, file_tokens, tokens, is_train, cfg, rng, counts)
        if cache is not None:
            version, internal, gauss = rng.getstate()  # 625 words of Mersenne Twister: bytes, not JSON
            cache.put(cache_mod.SPANS, key, {"objectives": objectives, "counts": dict(counts), "rng_version": version,
                                             "rng_gauss": gauss, "spans": [[s.start, s.end, s.kind] for s in chosen]},
                      array("I", internal).tobytes())
    context: list = []  # built on first use, then shared by every row of the file that carries context

    def maybe_context():
        if not (is_train and fmt.has_repo_layout and rng.random() < cfg.context_rate):
            return None
        if not context:
            files = _context_files(job, text, rng)
            ratio = getattr(file_tokens, "chars_per_token", None) if cfg.token_budgets == "estimate" else None
            context.append(render.build_context(tokens, job.repo, job.path, files, cfg.max_context_tokens, ratio)
                           if files else None)
        return context[0]

    rows: list[dict[str, Any]] = []
    fim_objectives = [o for o in objectives if o != "l2r"]
    for span, objective in zip(chosen, fim_objectives, strict=False):
        prefix = text[file_tokens.tail_start(span.start, cfg.max_prefix_tokens):span.start]
        suffix = text[span.end:file_tokens.head_end(span.end, cfg.max_suffix_tokens)]
        rows.append(render.fim_row(fmt, meta, prefix, text[span.start:span.end], suffix, objective, span.kind,
                                   maybe_context()))
        counts[f"kind:{span.kind}"] += 1
    for _ in range(objectives.count("l2r")):
        lines = src.line_starts
        start = lines[rng.randrange(len(lines))] if len(text) > cfg.max_l2r_tokens * 2 else 0
        body = text[start:file_tokens.head_end(start, cfg.max_l2r_tokens)]
        if body.strip():
            rows.append(render.l2r_row(fmt, meta, body, maybe_context()))
            counts["kind:l2r"] += 1
    for row in rows:
        counts[f"objective:{row['objective']}"] += 1
        counts["has_context"] += int(row["has_context"])
    if entry is not None:
        counts[CACHE_HIT] = 1
    return rows, dict(counts)
