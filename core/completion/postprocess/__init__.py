"""Post-processing of a raw generated middle: one filter per module, applied in the order of `FILTERS`.

Called by the language server after every generation and by the exam on every prediction
(`postprocess(text, PostprocessContext(...))`). A filter takes and returns text; an empty result ends the
chain.
"""

from __future__ import annotations

from collections.abc import Callable

from core.completion.postprocess.block_end import cut_at_block_end
from core.completion.postprocess.context import PostprocessContext
from core.completion.postprocess.drop_empty import drop_empty
from core.completion.postprocess.repetition import drop_repetitive_lines
from core.completion.postprocess.single_line import keep_single_line
from core.completion.postprocess.stop_sequences import cut_at_stop_sequences
from core.completion.postprocess.suffix_overlap import cut_suffix_overlap
from core.completion.postprocess.trim import trim_whitespace

Filter = Callable[[str, PostprocessContext], str]

FILTERS: list[Filter] = [
    cut_at_stop_sequences,
    cut_suffix_overlap,
    cut_at_block_end,
    keep_single_line,
    drop_repetitive_lines,
    trim_whitespace,
    drop_empty,
]


def postprocess(text: str, ctx: PostprocessContext) -> str:
    """Apply every filter in order; "" means: show nothing."""
    for step in FILTERS:
        text = step(text, ctx)
        if not text:
            return ""
    return text


__all__ = ["FILTERS", "Filter", "PostprocessContext", "postprocess"]
