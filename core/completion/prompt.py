"""Stage 2 of the pipeline: a FIM prompt within a token budget, with token healing.

Called by the language server (pipeline.py) and usable by the exam. The budget is counted in tokens of
the model's tokenizer (`tokenizers`, no torch) when one is given, else in characters at a conservative
ratio. Most of it goes to the prefix, a share to the suffix, the rest to repository context; shares left
unused flow back to the prefix. The rendered prompt is checked against `max_prompt_tokens` and shrunk
until it fits, so it never exceeds the backend's max input tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.fim import FimFormat, FimMode, RepoContext, RepoFile
from core.healing import rewind_prefix

log = logging.getLogger(__name__)

JOIN_SLACK = 4  # tokens allowed per join of separately counted pieces
CHARS_PER_TOKEN = 3  # conservative: code averages 3.5-4 characters per token with code tokenizers
_TRAILING_WORD = re.compile(r"[\w$]{1,24}$")


class Tokenizer(Protocol):
    def encode(self, text: str, *args, **kwargs): ...


@dataclass(frozen=True)
class PromptBudget:
    max_prompt_tokens: int = 2048
    suffix_share: float = 0.15
    context_share: float = 0.25


@dataclass(frozen=True)
class BuiltPrompt:
    prompt: str
    heal: str          # text the generation must start with (removed from the end of the prefix)
    prefix: str        # the prefix as used (cut to budget, without `heal`)
    suffix: str        # the suffix as used
    context: tuple[RepoFile, ...]
    tokens: int        # prompt length in tokens: a tight upper bound of the real count (estimated from
                       # characters without a tokenizer), never the budget itself
    exact: bool        # whether `tokens` was counted with the model's tokenizer


class TokenCounter:
    """Counts and cuts text in tokens of a `tokenizers.Tokenizer`, or in estimated tokens without one."""

    def __init__(self, tokenizer: Tokenizer | None = None) -> None:
        self.tokenizer = tokenizer

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def _encode(self, text: str):
        assert self.tokenizer is not None  # callers count in characters without one
        try:
            return self.tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            return self.tokenizer.encode(text)

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self.tokenizer is None:
            return -(-len(text) // CHARS_PER_TOKEN)
        return len(self._encode(text).ids)

    def tail(self, text: str, tokens: int) -> str:
        """The longest end of `text` within `tokens` tokens."""
        if tokens <= 0:
            return ""
        if self.tokenizer is None:
            return text[-tokens * CHARS_PER_TOKEN:]
        # Encode a window a little longer than the budget should need, growing it only when it falls short:
        # encoding cost is linear in characters, and editors send whole files.
        chars = tokens * 5
        while True:
            window = text[-chars:]
            enc = self._encode(window)
            if len(enc.ids) > tokens:
                return window[enc.offsets[len(enc.ids) - tokens][0]:]
            if len(window) == len(text):
                return window
            chars *= 2

    def head(self, text: str, tokens: int) -> str:
        """The longest start of `text` within `tokens` tokens."""
        if tokens <= 0:
            return ""
        if self.tokenizer is None:
            return text[:tokens * CHARS_PER_TOKEN]
        chars = tokens * 5
        while True:
            window = text[:chars]
            enc = self._encode(window)
            if len(enc.ids) > tokens:
                return window[:enc.offsets[tokens][0]]
            if len(window) == len(text):
                return window
            chars *= 2


def _snap_prefix(text: str, full_len: int) -> str:
    """A cut prefix starts at a line start when one is near, so the model does not see half a line."""
    if len(text) == full_len:
        return text
    nl = text.find("\n")
    return text[nl + 1:] if 0 <= nl < 200 else text


def _snap_suffix(text: str, full_len: int) -> str:
    if len(text) == full_len:
        return text
    nl = text.rfind("\n")
    return text[:nl + 1] if nl != -1 and len(text) - nl < 200 else text


def rewind_for_healing(prefix: str, counter: TokenCounter) -> tuple[str, str]:
    """(prefix without its last token, the removed text); by characters (a trailing word) without a tokenizer."""
    if not prefix or prefix[-1].isspace():
        return prefix, ""
    if counter.tokenizer is not None:
        rw = rewind_prefix(prefix, counter.tokenizer)
        return rw.prefix, rw.removed
    m = _TRAILING_WORD.search(prefix)
    if not m:
        return prefix, ""
    return prefix[:m.start()], m.group(0)


def build_prompt(
    prefix: str,
    suffix: str,
    fmt: FimFormat,
    *,
    budget: PromptBudget = PromptBudget(),
    tokenizer: Tokenizer | None = None,
    context: Sequence[RepoFile] = (),
    path: str = "",
    repo_name: str = "",
    mode: FimMode | str = FimMode.PSM,
    heal: bool = True,
) -> BuiltPrompt:
    """Render a FIM prompt for the cursor between `prefix` and `suffix` within `budget.max_prompt_tokens`."""
    counter = TokenCounter(tokenizer)
    total = max(16, budget.max_prompt_tokens)
    context = list(context) if fmt.has_repo_layout else []
    overhead = counter.count("".join(fmt.sentinels)) + counter.count(path) + counter.count(repo_name) + 8
    # Pieces are counted on their own; each join between two of them may merge differently by a few tokens.
    joins = 4 + 2 * len(context)
    available = max(8, total - overhead - JOIN_SLACK * joins)
    suffix_budget = int(available * budget.suffix_share)
    context_budget = int(available * budget.context_share) if fmt.has_repo_layout else 0

    suffix_used = _snap_suffix(counter.head(suffix, suffix_budget), len(suffix))
    suffix_tokens = counter.count(suffix_used)
    files: list[RepoFile] = []
    spent_context = 0
    for f in context:
        cost = counter.count(f.path) + counter.count(f.content) + 2
        if spent_context + cost > context_budget:
            continue
        files.append(f)
        spent_context += cost
    prefix_budget = available - suffix_tokens - spent_context
    prefix_used = _snap_prefix(counter.tail(prefix, prefix_budget), len(prefix))
    removed = ""
    if heal:
        prefix_used, removed = rewind_for_healing(prefix_used, counter)
    # Every piece is within its share: the whole is within `total`, joins included, without encoding it again.
    # The bound counts the prefix actually used, not its budget: a small file gives a small (reported) prompt.
    prefix_tokens = counter.count(prefix_used) if counter.exact else prefix_budget
    bound = overhead + JOIN_SLACK * joins + prefix_tokens + suffix_tokens + spent_context
    ctx = RepoContext(repo_name=repo_name, path=path, files=tuple(files)) if fmt.has_repo_layout else None
    prompt = fmt.render_prompt(prefix_used, suffix_used, mode, ctx)
    if counter.exact and bound <= total:
        return BuiltPrompt(prompt, removed, prefix_used, suffix_used, tuple(files), bound, True)
    for _ in range(8):  # tiny budgets: check the real count and shrink until it fits
        tokens = counter.count(prompt)
        excess = tokens - total
        if excess <= 0:
            return BuiltPrompt(prompt, removed, prefix_used, suffix_used, tuple(files), tokens, counter.exact)
        if files:
            files.pop()
        else:
            prefix_used = counter.tail(prefix_used, max(0, counter.count(prefix_used) - excess - 4))
        ctx = RepoContext(repo_name=repo_name, path=path, files=tuple(files)) if fmt.has_repo_layout else None
        prompt = fmt.render_prompt(prefix_used, suffix_used, mode, ctx)
    # Still over after several rounds (a pathological tokenizer): a short prefix alone always fits.
    prefix_used = counter.tail(prefix_used, available // 2)
    prompt = fmt.render_prompt(prefix_used, "", mode, None)
    return BuiltPrompt(prompt, removed, prefix_used, "", (), counter.count(prompt), counter.exact)


def load_tokenizer(path: str | Path | None) -> Any | None:
    """A `tokenizers.Tokenizer` from a tokenizer.json or a model directory; None (with a warning) if unusable.

    The language server and the exam load theirs here, so both count a prompt's budget the same way.
    """
    if not path:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        log.warning("tokenizer %s not found; budgeting prompts in characters", p)
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(p))
    except Exception as exc:  # a corrupt file must not stop completions: fall back to characters
        log.warning("tokenizer %s cannot be loaded (%s); budgeting prompts in characters", p, exc)
        return None
