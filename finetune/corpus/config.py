"""The `[corpus]` config section: every default of `inhouse corpus build`, with where it comes from.

Resolved once by the CLI (defaults < inhouse.toml < INHOUSE_CORPUS_* env < flags) and passed down to
`finetune.corpus.pipeline.build`. docs/corpus.md explains each default and cites its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import config

# Span kinds and their share of the examples of a file (normalised at use). AST kinds dominate, as in
# AST-aware FIM (Gong et al. 2024); IDE-shaped and character-level spans keep the model robust to real cursors.
DEFAULT_SPAN_MIX: dict[str, float] = {
    "function_body": 0.10,
    "block": 0.10,
    "statement": 0.14,
    "expression": 0.10,
    "call_arguments": 0.06,
    "condition": 0.05,
    "ast_aligned": 0.10,
    "line_end": 0.15,
    "block_end": 0.08,
    "char_random": 0.07,
    "empty": 0.05,
}

# The exam measures what an editor asks for: whole AST units and IDE-shaped cursors, no random character cuts.
DEFAULT_EVAL_SPAN_MIX: dict[str, float] = {
    "function_body": 0.15,
    "block": 0.15,
    "statement": 0.20,
    "expression": 0.10,
    "call_arguments": 0.05,
    "condition": 0.05,
    "line_end": 0.20,
    "block_end": 0.10,
}

SPAN_KINDS = (*DEFAULT_SPAN_MIX, "line_fallback")


@config.section("corpus")
@dataclass(frozen=True)
class CorpusConfig:
    # Model and format: token lengths are counted in this tokenizer; the format defaults to the model's.
    model: str | None = None  # model directory: its tokenizer counts tokens, its inhouse.json names the FIM format
    tokenizer: str | None = None  # a tokenizer.json instead of --model (then fim_format is required)
    fim_format: str | None = None  # FIM format to render in; unset: the model's
    seed: int = 0  # random seed: the same input and seed give byte-identical shards
    workers: int = 0  # 0: all cores (local executor)
    executor: str = "local"  # "local": a process pool on this host; "ray": Ray actors on a cluster (docs/corpus.md)
    ray_address: str | None = None  # HOST:PORT of a Ray head; unset: $RAY_ADDRESS, else Ray started on this host
    ray_workers: int = 0  # map actors on the Ray cluster, one CPU each; 0: one per CPU the cluster has
    # Repositories given by `url` in repos.toml: cloned on each host that reads them (the driver on the local
    # executor, the workers on Ray) and fetched on the next build.
    clone_dir: str | None = None  # where `url` repositories are cloned; unset: ~/.cache/inhouse/repos
    # Split (files, grouped by near-duplicate clusters).
    eval_fraction: float = 0.05  # share of files held out for the exam
    dev_fraction: float = 0.02  # share of files held out for checkpoint choice
    eval_since: str | None = None  # YYYY-MM-DD or ISO time, UTC if no offset: the exam is files last committed after it
    split_threshold: float = 0.5  # Jaccard at which files are grouped for the split (below the dedup 0.7)
    # Filters (StarCoder / The Stack defaults).
    max_file_bytes: int = 1_000_000  # files larger than this are skipped
    max_lines: int = 100_000  # files with more lines are skipped
    max_avg_line_length: float = 100.0  # files whose mean line is longer are skipped (minified, data)
    max_line_length: int = 1000  # files with any longer line are skipped
    min_alpha_fraction: float = 0.25  # files with a smaller share of letters are skipped
    header_lines: int = 5  # where auto-generated markers are looked for
    max_encoded_blob_chars: int = 1024  # longest base64/hex/\u-escape run kept
    languages: tuple[str, ...] = ()  # empty: every language of core/languages.toml
    # Dedup.
    near_dup_threshold: float = 0.7  # MinHash Jaccard above which files are near-duplicates
    shingle_size: int = 5  # code tokens per MinHash shingle
    num_perm: int = 128  # MinHash permutations
    # Spans.
    max_examples_per_file: int = 8  # training rows cut from each file
    eval_examples_per_file: int = 3  # exam rows cut from each held-out file
    max_middle_tokens: int = 256  # longest middle, in tokens of the target tokenizer
    max_prefix_tokens: int = 1024  # prefix kept before a middle, in tokens
    max_suffix_tokens: int = 512  # suffix kept after a middle, in tokens
    min_prefix_chars: int = 16  # a cursor needs at least this much code before it
    # "exact": every file is tokenized once and cuts are exact within a token; "estimate": large files are
    # cut by a characters-per-token ratio measured on slices of them (approximate; middles stay exact; no
    # faster since exact counting got cheap: the same MB/s on bench/corpus.py).
    token_budgets: str = "exact"  # "exact" or "estimate" (see below)
    max_char_span: int = 200  # longest character-level random middle
    span_mix: dict[str, float] = field(default_factory=DEFAULT_SPAN_MIX.copy)  # span-kind shares of training rows
    eval_span_mix: dict[str, float] = field(default_factory=DEFAULT_EVAL_SPAN_MIX.copy)  # span-kind shares of exam rows
    # Render (Bavarian et al. 2022: FIM rate 0.9, SPM half of it).
    fim_rate: float = 0.9  # share of training rows rendered as FIM (the rest left-to-right)
    spm_rate: float = 0.5  # share of FIM rows in SPM order
    context_rate: float = 0.25  # share of train FIM/L2R rows that carry repo-level context
    max_context_files: int = 3  # related files of the same repository per row with context
    max_context_tokens: int = 1024  # token budget of that context
    max_l2r_tokens: int = 2048  # longest left-to-right row, in tokens
    # Write.
    rows_per_shard: int = 50_000  # rows per Parquet shard
    # Incremental builds (docs/corpus.md): per-file results cached by git blob id; dedup and split stay global.
    cache_dir: str | None = None  # directory of the per-file cache; unset: no cache, every file is processed
    cache_max_gb: float = 0.0  # cap: after a build, drop least recently used entries it did not use to fit; 0: no cap
    cache_max_age_days: float = 0.0  # after a build, drop entries unused for this many days; 0: keep them

    def __post_init__(self) -> None:
        require = config.require
        require(self.workers >= 0, "workers", ">= 0 (0 means all cores)", self.workers)
        for name in ("eval_fraction", "dev_fraction", "fim_rate", "spm_rate", "context_rate",
                     "min_alpha_fraction"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, name, "between 0 and 1", value)
        require(self.eval_fraction + self.dev_fraction < 1.0, "eval_fraction + dev_fraction", "< 1",
                self.eval_fraction + self.dev_fraction)
        for name in ("near_dup_threshold", "split_threshold"):
            value = getattr(self, name)
            require(0.0 < value <= 1.0, name, "in (0, 1]", value)
        for name in ("max_file_bytes", "max_lines", "max_line_length", "shingle_size", "num_perm",
                     "max_middle_tokens", "max_prefix_tokens", "max_suffix_tokens", "max_l2r_tokens",
                     "rows_per_shard", "max_char_span"):
            value = getattr(self, name)
            require(value > 0, name, "> 0", value)
        require(self.max_examples_per_file >= 0, "max_examples_per_file", ">= 0", self.max_examples_per_file)
        require(self.eval_examples_per_file >= 1, "eval_examples_per_file", ">= 1", self.eval_examples_per_file)
        for name in ("span_mix", "eval_span_mix"):
            mix = getattr(self, name)
            unknown = sorted(set(mix) - set(SPAN_KINDS))
            require(not unknown, name, f"made of span kinds {', '.join(SPAN_KINDS)}", unknown)
            require(all(w >= 0 for w in mix.values()) and sum(mix.values()) > 0, name,
                    "non-negative weights with a positive sum", mix)
        require(self.executor in ("local", "ray"), "executor", '"local" or "ray"', self.executor)
        require(self.ray_workers >= 0, "ray_workers", ">= 0 (0: one per CPU of the cluster)", self.ray_workers)
        require(self.token_budgets in ("exact", "estimate"), "token_budgets", '"exact" or "estimate"',
                self.token_budgets)
        for name in ("cache_max_gb", "cache_max_age_days"):
            value = getattr(self, name)
            require(value >= 0, name, ">= 0 (0: no limit)", value)
        if self.eval_since is not None:
            try:
                cutoff_timestamp(self.eval_since)
            except ValueError:
                require(False, "eval_since", "a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM:SS[+HH:MM]",
                        self.eval_since)


def cutoff_timestamp(value: str) -> int:
    """Seconds since the epoch of an `eval_since` value: a date is its midnight UTC, a time without an offset
    is UTC. ValueError for anything else (git's own date parser would take "last tuesday", and reads a bare
    date as that day at the current time of day in the local time zone)."""
    import datetime
    import math

    if len(value) == 10:
        stamp = datetime.datetime.combine(datetime.date.fromisoformat(value), datetime.time())
    elif len(value) >= 19 and value[10] == "T":
        stamp = datetime.datetime.fromisoformat(value)
    else:
        raise ValueError(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return math.ceil(stamp.timestamp())  # commit times are whole seconds
