"""Stage 7, render: spans become rows in the dataset's FIM format (`core.fim`), lengths in target tokens.

Training rows are FIM with probability `fim_rate` (PSM or SPM, SPM with probability `spm_rate`; Bavarian
et al. 2022 found 0.9 and 0.5 cost nothing on left-to-right skill) and plain left-to-right otherwise. A
share `context_rate` carries related files of the same repository in the format's repository layout
(StarCoder2 `<repo_name>`/`<file_sep>`). Exam rows are PSM with the raw pieces kept for re-rendering.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Protocol

from core.fim import FimFormat, FimMode, RepoContext, RepoFile
from finetune.corpus.tokencount import SNAP_CHARS, WordCounter, WordIndex

# The most characters one token of a code tokenizer covers (runs of spaces): no middle longer than this many
# characters per token of its cap can fit.
MAX_CHARS_PER_TOKEN = 8
# How wide a window `head`/`tail` encode to keep `limit` tokens: code averages 3-4.5 characters a token in
# BPE code tokenizers, so a window of 5 per token nearly always holds the limit; when it holds fewer, the cut
# is simply shorter than the budget (never longer), and a 1 MB file is never encoded whole for 1024 tokens.
WINDOW_CHARS_PER_TOKEN = 5


class Encoder(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...): ...


class Tokens:
    """Token counts and token-budgeted cuts in the target tokenizer (a `tokenizers.Tokenizer`)."""

    def __init__(self, tokenizer: Encoder) -> None:
        self.tokenizer = tokenizer

    def _encode(self, text: str):
        return self.tokenizer.encode(text, add_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self._encode(text).ids) if text else 0

    def fits(self, text: str, limit: int) -> bool:
        return len(text) <= limit * MAX_CHARS_PER_TOKEN and self.count(text) <= limit

    def tail(self, text: str, limit: int) -> str:
        """The longest end of `text` within `limit` tokens, starting at a line start when one is near."""
        if not text or limit <= 0:
            return ""
        window = text[-limit * WINDOW_CHARS_PER_TOKEN:]
        offsets = self._encode(window).offsets
        if len(offsets) > limit:
            cut = offsets[len(offsets) - limit][0]
        elif len(window) == len(text):
            return text
        else:
            cut = 0
        nl = window.find("\n", cut)
        if nl != -1 and nl + 1 < len(window) and nl - cut < SNAP_CHARS and (cut > 0 or nl >= 0):
            cut = nl + 1
        return window[cut:]

    def head(self, text: str, limit: int) -> str:
        """The longest start of `text` within `limit` tokens, ending at a line end when one is near."""
        return self.head_counted(text, limit)[0]

    def head_counted(self, text: str, limit: int) -> tuple[str, int]:
        """`head` and (within a token) how many tokens it holds."""
        if not text or limit <= 0:
            return "", 0
        window = text[: limit * WINDOW_CHARS_PER_TOKEN]
        offsets = self._encode(window).offsets
        if len(offsets) > limit:
            cut = offsets[limit][0]
        elif len(window) == len(text):
            return text, len(offsets)
        else:
            cut = len(window)
        nl = window.rfind("\n", 0, cut)
        if nl > 0 and cut - nl < SNAP_CHARS:
            cut = nl + 1
        return window[:cut], bisect_left([o[0] for o in offsets], cut)


class EstimatedTokens:
    """Budgets for a large file from its characters-per-token ratio, measured on a few slices of it.

    `token_budgets = "estimate"`: the tokenizer sees ~3 kB per file instead of all of it (that mattered while
    files were encoded whole; with word indexes exact budgets cost about as little). The ratio used is the densest
    slice's minus 10 %, so budgets mostly err short; a region denser than every slice can still overshoot (within
    ~35 % on the 2k-vocabulary test tokenizer).
    Middles are always counted exactly.
    """

    SLICE = 640
    SLICES = 5

    def __init__(self, tokens: Tokens, text: str, rng: random.Random) -> None:
        self.text = text
        starts = sorted(rng.randrange(0, len(text) - self.SLICE) for _ in range(self.SLICES))
        ratios = []
        for a in starts:
            piece = text[a:a + self.SLICE]
            ratios.append(len(piece) / max(tokens.count(piece), 1))
        self.chars_per_token = min(ratios) * 0.9
        self.mean_chars_per_token = sum(ratios) / len(ratios)

    def count(self, a: int, b: int) -> int:
        return int((b - a) / self.mean_chars_per_token + 0.5)

    def tail_start(self, a: int, limit: int) -> int:
        cut = a - int(limit * self.chars_per_token)
        if cut <= 0:
            return 0
        nl = self.text.find("\n", cut, a)
        return nl + 1 if nl != -1 and nl - cut < SNAP_CHARS else cut

    def head_end(self, b: int, limit: int) -> int:
        cut = b + int(limit * self.chars_per_token)
        if cut >= len(self.text):
            return len(self.text)
        nl = self.text.rfind("\n", b, cut)
        return nl + 1 if nl != -1 and cut - nl < SNAP_CHARS else cut


def file_tokens(counter: WordCounter, tokens: Tokens, text: str, mode: str,
                rng: random.Random) -> WordIndex | EstimatedTokens:
    """Exact token budgets for the file, or (mode "estimate", files over 3 slices) a calibrated estimate."""
    if mode == "estimate" and len(text) > 3 * EstimatedTokens.SLICES * EstimatedTokens.SLICE:
        return EstimatedTokens(tokens, text, rng)
    return WordIndex.build(counter, text)


@dataclass(frozen=True)
class RowMeta:
    repo: str
    path: str
    language: str
    fim_format: str


def choose_objective(rng: random.Random, fim_rate: float, spm_rate: float) -> str:
    if rng.random() >= fim_rate:
        return "l2r"
    return "spm" if rng.random() < spm_rate else "psm"


def fim_row(fmt: FimFormat, meta: RowMeta, prefix: str, middle: str, suffix: str, objective: str, kind: str,
            context: RepoContext | None = None) -> dict[str, Any]:
    """One FIM row; `text[:prompt_chars]` is exactly the inference prompt for the same pieces."""
    mode = FimMode(objective)
    prompt = fmt.render_prompt(prefix, suffix, mode, context)
    text = fmt.render_example(prefix, middle, suffix, mode, context)
    assert text.startswith(prompt)
    return {
        "text": text, "objective": objective, "prompt_chars": len(prompt), "prefix": prefix, "middle": middle,
        "suffix": suffix, "kind": kind, "language": meta.language, "path": meta.path, "repo": meta.repo,
        "fim_format": meta.fim_format, "has_context": bool(context and context.files),
    }


def l2r_row(fmt: FimFormat, meta: RowMeta, body: str, context: RepoContext | None = None) -> dict[str, Any]:
    return {
        "text": fmt.render_l2r(body, context), "objective": "l2r", "prompt_chars": 0, "prefix": body,
        "middle": "", "suffix": "", "kind": "l2r", "language": meta.language, "path": meta.path,
        "repo": meta.repo, "fim_format": meta.fim_format, "has_context": bool(context and context.files),
    }


def build_context(tokens: Tokens, repo: str, path: str, files: list[tuple[str, str, WordIndex | None]],
                  budget: int, chars_per_token: float | None = None) -> RepoContext:
    """The repository context of one row: related files cut to fit `budget` tokens between them.

    Each related file comes with its `WordIndex` (exact budgets, built once in the prepare stage) or
    None, in which case it is cut by `chars_per_token` (estimated budgets) or encoded.
    """
    out: list[RepoFile] = []
    left = budget
    for other_path, content, offsets in files:
        if left <= 32:
            break
        if offsets is not None:
            end = offsets.head_end(0, left)
            piece, used = content[:end], offsets.count(0, end)
        elif chars_per_token:
            piece = content[: int(left * chars_per_token)]
            nl = piece.rfind("\n")
            piece = piece[: nl + 1] if len(piece) < len(content) and nl > 0 else piece
            used = int(len(piece) / chars_per_token)
        else:
            piece, used = tokens.head_counted(content, left)
        if not piece.strip():
            continue
        out.append(RepoFile(other_path, piece))
        left -= used + 4
    return RepoContext(repo_name=repo, path=path, files=tuple(out))
