"""Stage 7, render: spans become rows in the dataset's FIM format (`core.fim`), lengths in target tokens.

Training rows are FIM with probability `fim_rate` (PSM or SPM, SPM with probability `spm_rate`; Bavarian
et al. 2022 found 0.9 and 0.5 cost nothing on left-to-right skill) and plain left-to-right otherwise. A
share `context_rate` carries related files of the same repository in the format's repository layout
(StarCoder2 `<repo_name>`/`<file_sep>`). Exam rows are PSM with the raw pieces kept for re-rendering.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from core.fim import FimFormat, FimMode, RepoContext, RepoFile

# The most characters one token of a code tokenizer covers (runs of spaces): windows are cut this wide
# before encoding, so a 1 MB file is never encoded whole to keep 1024 tokens of it.
MAX_CHARS_PER_TOKEN = 8
SNAP_CHARS = 400


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
        window = text[-limit * MAX_CHARS_PER_TOKEN:]
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
        if not text or limit <= 0:
            return ""
        window = text[: limit * MAX_CHARS_PER_TOKEN]
        offsets = self._encode(window).offsets
        if len(offsets) > limit:
            cut = offsets[limit][0]
        elif len(window) == len(text):
            return text
        else:
            cut = len(window)
        nl = window.rfind("\n", 0, cut)
        if nl > 0 and cut - nl < SNAP_CHARS:
            cut = nl + 1
        return window[:cut]


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


def build_context(tokens: Tokens, repo: str, path: str, files: list[tuple[str, str]], budget: int) -> RepoContext:
    """The repository context of one row: related files cut to fit `budget` tokens between them."""
    out: list[RepoFile] = []
    left = budget
    for other_path, content in files:
        if left <= 32:
            break
        piece = tokens.head(content, left)
        if not piece.strip():
            continue
        out.append(RepoFile(other_path, piece))
        left -= tokens.count(piece) + 4
    return RepoContext(repo_name=repo, path=path, files=tuple(out))
