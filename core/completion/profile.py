"""The completion profile: how a model is asked for a completion, defined once for training, exam and editor.

A model or adapter directory carries its profile in `inhouse.json` ("profile"); `inhouse train` writes the
adapter's, the server reports the base's and every adapter's in `GET /info`, the language server applies the
one of the adapter it is configured for, and the exam grades every run under a named profile. Adapters made
before profiles existed get one derived from what they recorded (`from_legacy_info`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from core.errors import ConfigError
from core.fim import FimMode, get_format

log = logging.getLogger(__name__)

PROFILE_KEY = "profile"  # the key of the profile in inhouse.json and in /info


class PromptOrder(str, Enum):
    """PSM / SPM fill-in-the-middle, or left-to-right (the prefix alone, as plain text)."""

    PSM = "psm"
    SPM = "spm"
    L2R = "l2r"

    @property
    def fim_mode(self) -> FimMode:
        return FimMode.SPM if self is PromptOrder.SPM else FimMode.PSM


class BosPolicy(str, Enum):
    """Whether prompts are encoded with the tokenizer's special tokens (a BOS for models that add one, as TGI
    and vLLM do) or as bare text. Training, the exam and the server encode with the same rule."""

    MODEL = "model"
    NONE = "none"

    @property
    def add_special_tokens(self) -> bool:
        return self is BosPolicy.MODEL


@dataclass(frozen=True)
class CompletionProfile:
    fim_format: str                        # registered FIM format name (core.fim)
    order: PromptOrder = PromptOrder.SPM   # prompt order
    heal: bool = True                      # token healing: rewind the prefix's last token, constrain the start
    context: bool = True                   # repository context (file path, other files) where the format has a layout
    max_prompt_tokens: int = 1024          # prompt budget (capped by the backend's max input tokens)
    suffix_share: float = 0.15             # of the budget, for the suffix
    context_share: float = 0.25            # of the budget, at most, for other files
    max_new_tokens: int = 48               # new tokens for a single-line cursor
    max_new_tokens_multiline: int = 128    # new tokens for a multi-line cursor
    stop: tuple[str, ...] = ()             # stop sequences beyond the FIM format's own
    bos: BosPolicy = BosPolicy.MODEL       # how prompts are encoded (one rule for training, exam and serving)

    def __post_init__(self) -> None:
        get_format(self.fim_format)  # ConfigError naming the known formats
        _require(isinstance(self.order, PromptOrder), "order", self.order)
        _require(isinstance(self.bos, BosPolicy), "bos", self.bos)
        _require(self.max_prompt_tokens >= 32, "max_prompt_tokens", self.max_prompt_tokens, ">= 32")
        _require(0 <= self.suffix_share < 1, "suffix_share", self.suffix_share, "in [0, 1)")
        _require(0 <= self.context_share < 1, "context_share", self.context_share, "in [0, 1)")
        _require(self.suffix_share + self.context_share < 0.9, "suffix_share + context_share",
                 self.suffix_share + self.context_share, "< 0.9")
        _require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")
        _require(self.max_new_tokens_multiline >= 1, "max_new_tokens_multiline", self.max_new_tokens_multiline,
                 ">= 1")

    @property
    def mode(self) -> str:
        """The exam's name for the order and context: "spm+ctx", "psm", "l2r+ctx"..."""
        return self.order.value + ("+ctx" if self.context else "")

    @property
    def stops(self) -> tuple[str, ...]:
        """Every stop sequence of a generation: the FIM format's, then the profile's own."""
        return tuple(dict.fromkeys((*get_format(self.fim_format).stop, *self.stop)))

    def variant(self, mode: str) -> CompletionProfile:
        """This profile in another exam mode ("psm", "spm+ctx"...); healing stays on only where the middle
        continues the prefix directly (l2r, spm)."""
        order, context = parse_mode(mode)
        return dataclasses.replace(self, order=order, context=context,
                                   heal=self.heal and order is not PromptOrder.PSM)

    def describe(self) -> str:
        """One line for logs, the status bar and reports."""
        return (f"{self.fim_format} {self.order.value.upper()}{' + context' if self.context else ''}"
                f"{', healing' if self.heal else ''}, {self.max_prompt_tokens} prompt tokens, "
                f"{self.max_new_tokens}/{self.max_new_tokens_multiline} new, BOS {self.bos.value}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["order"] = self.order.value
        out["bos"] = self.bos.value
        out["stop"] = list(self.stop)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "profile") -> CompletionProfile:
        """A profile from JSON; an unknown key or a bad value is a ConfigError naming the field and the value."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a JSON object, got {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        if "fim_format" not in data:
            raise ConfigError(f"{where}: `fim_format` is required")
        return cls(**{k: _convert(k, v, where) for k, v in data.items()})

    def with_overrides(self, overrides: Mapping[str, Any], *, where: str = "setting") -> CompletionProfile:
        """This profile with some fields replaced (values as JSON gives them); checked like `from_dict`."""
        if not overrides:
            return self
        return CompletionProfile.from_dict({**self.to_dict(), **overrides}, where=where)


def parse_mode(mode: str) -> tuple[PromptOrder, bool]:
    """("spm", True) for "spm+ctx"; a ConfigError naming the value for anything else."""
    order, plus, ctx = str(mode).partition("+")
    if (plus and ctx != "ctx") or order not in {o.value for o in PromptOrder}:
        raise ConfigError(f"unknown prompt mode {mode!r} (known: l2r, psm, spm, each with an optional +ctx)")
    return PromptOrder(order), bool(plus)


def base_model_profile(fim_format: str) -> CompletionProfile:
    """The profile a base model directory is made with: FIM SPM with repository context and token healing, in
    prompts of 512 tokens. SPM + context is the base's best mode in the exam (the README's headline: SmolLM2,
    400 held-out cursors, prompts of 512 tokens); PSM gave SmolLM2 0.0 % exact match."""
    return CompletionProfile(fim_format=fim_format, order=PromptOrder.SPM, context=True, heal=True,
                             max_prompt_tokens=512)


def from_legacy_info(info: Mapping[str, Any], *, where: str) -> CompletionProfile | None:
    """The profile of a directory made before profiles, None without a FIM format. A base model gets
    `base_model_profile`; an adapter its recorded `primary_mode` (else the FIM order it trained on most, else
    SPM), with healing where the order allows it and no BOS (training encoded without special tokens then).
    One log line says it was derived."""
    fmt = info.get("fim_format")
    if not fmt:
        return None
    if info.get("kind") == "model":
        profile = base_model_profile(str(fmt))
        log.info("%s has no completion profile (made before profiles): using the base default %s", where,
                 profile.describe())
        return profile
    mode = info.get("primary_mode")
    if not mode:
        objectives = info.get("objectives") or {}
        fim_counts = {o: objectives.get(o, 0) for o in ("psm", "spm") if isinstance(objectives, Mapping)}
        mode = max(fim_counts, key=lambda o: fim_counts[o]) if fim_counts and max(fim_counts.values()) else "spm"
    order, context = parse_mode(mode)
    profile = CompletionProfile(fim_format=str(fmt), order=order, context=context,
                                heal=order is not PromptOrder.PSM, bos=BosPolicy.NONE)
    log.info("%s has no completion profile (made before profiles): derived %s from its recorded %s", where,
             profile.describe(), "primary_mode" if info.get("primary_mode") else "objectives")
    return profile


def profile_of_info(info: Mapping[str, Any], *, where: str) -> CompletionProfile | None:
    """The profile an `inhouse.json` holds, derived for older directories; None when it names no FIM format."""
    if PROFILE_KEY in info:
        return CompletionProfile.from_dict(info[PROFILE_KEY], where=f"{where}: {PROFILE_KEY}")
    return from_legacy_info(info, where=where)


def _require(ok: bool, name: str, value: Any, rule: str = "") -> None:
    if not ok:
        raise ConfigError(f"profile `{name}` must be {rule or 'valid'}, got {value!r}")


_BOOLS = ("heal", "context")
_INTS = ("max_prompt_tokens", "max_new_tokens", "max_new_tokens_multiline")
_FLOATS = ("suffix_share", "context_share")


def _convert(key: str, value: Any, where: str) -> Any:
    def bad(rule: str) -> ConfigError:
        return ConfigError(f"{where}: `{key}` must be {rule}, got {value!r}")

    if key == "order":
        try:
            return PromptOrder(value)
        except ValueError:
            raise bad("one of " + ", ".join(o.value for o in PromptOrder)) from None
    if key == "bos":
        try:
            return BosPolicy(value)
        except ValueError:
            raise bad("one of " + ", ".join(b.value for b in BosPolicy)) from None
    if key == "fim_format":
        if not isinstance(value, str):
            raise bad("a FIM format name")
        try:
            get_format(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: `fim_format`: {exc}") from None
        return value
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if key == "stop":
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) and s for s in value):
            raise bad("a list of non-empty strings")
        return tuple(value)
    raise bad("known")  # unreachable: from_dict checks the names
