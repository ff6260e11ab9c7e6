"""Fill-in-the-middle formats: the one definition shared by training, the exam, serving and the editor.

A registry keyed by explicit name (never by a substring of a model id). Each `FimFormat` renders
`render_example(prefix, middle, suffix)` for training and `render_prompt(prefix, suffix)` for inference,
in PSM or SPM order, optionally in its family's repository-level layout; the prompt is always an exact
prefix of the example (tests/core/test_fim.py checks it for every format).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from core.errors import ConfigError, ModelError


class FimMode(str, Enum):
    """PSM: prefix, suffix, then middle. SPM: suffix first, so the middle continues the prefix directly."""

    PSM = "psm"
    SPM = "spm"


@dataclass(frozen=True)
class RepoFile:
    path: str
    content: str


@dataclass(frozen=True)
class RepoContext:
    """Other files of the same repository, rendered before the current file in the repo-level layout."""

    repo_name: str = ""
    path: str = ""
    files: tuple[RepoFile, ...] = ()


@dataclass(frozen=True)
class FimFormat:
    name: str
    prefix: str
    suffix: str
    middle: str
    eot: str
    # Text placed between sentinels and code, for families whose sentinels carry a space (Code Llama).
    psm_prefix_sep: str = ""
    psm_suffix_sep: str = ""
    psm_middle_sep: str = ""
    # Repository-level layout, where the family has one.
    repo_name: str | None = None
    file_sep: str | None = None
    repo_style: str = ""  # "starcoder2", "qwen", "codegemma", or "" when the family has none
    extra_stops: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    @property
    def sentinels(self) -> tuple[str, ...]:
        """Every special string the format writes; each must be exactly one token of the model."""
        out = [self.prefix, self.suffix, self.middle, self.eot]
        if self.repo_name:
            out.append(self.repo_name)
        if self.file_sep:
            out.append(self.file_sep)
        return tuple(dict.fromkeys(out))

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop sequences for generation of a middle."""
        out = [self.eot, self.prefix, self.suffix, self.middle, *self.extra_stops]
        if self.file_sep:
            out.append(self.file_sep)
        return tuple(dict.fromkeys(out))

    @property
    def has_repo_layout(self) -> bool:
        return bool(self.repo_style)

    def _fim(self, prefix: str, suffix: str, mode: FimMode) -> str:
        p, s, m = self.prefix, self.suffix, self.middle
        ps, ss, ms = self.psm_prefix_sep, self.psm_suffix_sep, self.psm_middle_sep
        if mode is FimMode.SPM:
            return f"{p}{ps}{s}{suffix}{ss}{m}{ms}{prefix}"
        return f"{p}{ps}{prefix}{ss}{s}{suffix}{ss}{m}{ms}"

    def _repo_header(self, context: RepoContext) -> tuple[str, str]:
        """(text before the current file, text that starts the current file's prefix)."""
        style = self.repo_style
        if style == "starcoder2":
            head = f"{self.repo_name}{context.repo_name}" if context.repo_name else ""
            for f in context.files:
                head += f"{self.file_sep}{f.path}\n{f.content}"
            head += self.file_sep or ""
            return head, f"{context.path}\n" if context.path else ""
        if style == "qwen":
            head = f"{self.repo_name}{context.repo_name}\n" if context.repo_name else ""
            for f in context.files:
                head += f"{self.file_sep}{f.path}\n{f.content}\n"
            head += f"{self.file_sep}{context.path}\n" if context.path else ""
            return head, ""
        if style == "codegemma":
            head = ""
            for f in context.files:
                head += f"{f.path}\n{f.content}{self.file_sep}"
            return head, f"{context.path}\n" if context.path else ""
        return "", ""

    def render_prompt(
        self,
        prefix: str,
        suffix: str,
        mode: FimMode | str = FimMode.PSM,
        context: RepoContext | None = None,
    ) -> str:
        """The inference prompt; the model generates the middle after it."""
        head, lead = ("", "")
        if context is not None and self.has_repo_layout and (context.files or context.path or context.repo_name):
            head, lead = self._repo_header(context)
        mode = FimMode(mode)
        if mode is FimMode.SPM:
            # The file's path (lead) belongs before any code; in SPM the prefix comes last, so it goes first.
            return head + lead + self._fim(prefix, suffix, mode)
        return head + self._fim(lead + prefix, suffix, mode)

    def render_example(
        self,
        prefix: str,
        middle: str,
        suffix: str,
        mode: FimMode | str = FimMode.PSM,
        context: RepoContext | None = None,
    ) -> str:
        """The training text: the inference prompt, the middle, then the end-of-middle token."""
        return self.render_prompt(prefix, suffix, mode, context) + middle + self.eot

    def render_l2r(self, text: str, context: RepoContext | None = None) -> str:
        """A plain left-to-right document (continued pretraining), in the repo layout when given context."""
        head, lead = ("", "")
        if context is not None and self.has_repo_layout and (context.files or context.path or context.repo_name):
            head, lead = self._repo_header(context)
        return head + lead + text + self.eot


class _Encoder(Protocol):
    def encode(self, text: str, *args, **kwargs): ...


_FORMATS: dict[str, FimFormat] = {}


def register(fmt: FimFormat) -> FimFormat:
    for key in (fmt.name, *fmt.aliases):
        if key in _FORMATS:
            raise ValueError(f"FIM format {key!r} registered twice")
        _FORMATS[key] = fmt
    return fmt


STARCODER = register(FimFormat(
    name="starcoder", aliases=("starcoder2", "santacoder"),
    prefix="<fim_prefix>", suffix="<fim_suffix>", middle="<fim_middle>", eot="<|endoftext|>",
    repo_name="<repo_name>", file_sep="<file_sep>", repo_style="starcoder2",
))
QWEN25_CODER = register(FimFormat(
    name="qwen2.5-coder", aliases=("qwen3-coder",),
    prefix="<|fim_prefix|>", suffix="<|fim_suffix|>", middle="<|fim_middle|>", eot="<|endoftext|>",
    repo_name="<|repo_name|>", file_sep="<|file_sep|>", repo_style="qwen", extra_stops=("<|fim_pad|>",),
))
DEEPSEEK_CODER = register(FimFormat(
    name="deepseek-coder",
    prefix="<｜fim▁begin｜>", suffix="<｜fim▁hole｜>", middle="<｜fim▁end｜>", eot="<｜end▁of▁sentence｜>",
    extra_stops=("<|EOT|>",),
))
CODELLAMA = register(FimFormat(
    name="codellama",
    prefix="<PRE>", suffix="<SUF>", middle="<MID>", eot="<EOT>",
    psm_prefix_sep=" ", psm_suffix_sep=" ", psm_middle_sep="",
))
CODEGEMMA = register(FimFormat(
    name="codegemma",
    prefix="<|fim_prefix|>", suffix="<|fim_suffix|>", middle="<|fim_middle|>", eot="<|file_separator|>",
    file_sep="<|file_separator|>", repo_style="codegemma", extra_stops=("<end_of_turn>", "<eos>"),
))
# SmolLM2 has no FIM tokens: its sentinels are special tokens already in its vocabulary that code never
# contains (the Jupyter markers of its pretraining data), so the vocabulary never changes and adapters stay
# servable by TGI and vLLM. Its StarCoder-style <repo_name>/<file_sep> tokens give the repo-level layout.
SMOLLM2 = register(FimFormat(
    name="smollm2",
    prefix="<jupyter_start>", suffix="<jupyter_text>", middle="<jupyter_code>", eot="<|endoftext|>",
    repo_name="<repo_name>", file_sep="<file_sep>", repo_style="starcoder2",
    extra_stops=("<jupyter_output>", "<|im_end|>"),
))


def get_format(name: str) -> FimFormat:
    """The format registered under this exact name or alias; ConfigError naming the known ones otherwise."""
    try:
        return _FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(_FORMATS))
        raise ConfigError(f"unknown FIM format {name!r} (known: {known})") from None


def format_names() -> list[str]:
    return sorted({fmt.name for fmt in _FORMATS.values()})


def _ids(encoding) -> list[int]:
    ids = getattr(encoding, "ids", encoding)
    if isinstance(ids, dict):
        ids = ids["input_ids"]
    return list(ids)


def sentinel_problems(fmt: FimFormat, tokenizer: _Encoder) -> list[str]:
    """For each sentinel of `fmt` that is not exactly one token of `tokenizer`, a sentence saying so.

    Works with a `tokenizers.Tokenizer` or a transformers tokenizer.
    """
    problems = []
    for s in fmt.sentinels:
        try:
            ids = _ids(tokenizer.encode(s, add_special_tokens=False))
        except TypeError:
            ids = _ids(tokenizer.encode(s))
        if len(ids) != 1:
            problems.append(f"sentinel {s!r} of FIM format {fmt.name!r} is {len(ids)} tokens, must be exactly 1")
    return problems


def check_sentinels(fmt: FimFormat, tokenizer: _Encoder) -> None:
    """Raise ModelError when a sentinel of the format is not a single token of the tokenizer."""
    problems = sentinel_problems(fmt, tokenizer)
    if problems:
        raise ModelError("; ".join(problems))


def strip_sentinels(text: str, fmt: FimFormat, extra: Iterable[str] = ()) -> str:
    """Remove every sentinel from a piece of text (a generated middle must never carry one)."""
    for s in (*fmt.sentinels, *extra):
        text = text.replace(s, "")
    return text


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Cut generated text at the earliest stop sequence."""
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
