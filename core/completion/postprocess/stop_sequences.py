"""Filter 1: cut at the earliest stop sequence (FIM sentinels, end of text) the backend let through."""

from __future__ import annotations

from core.completion.postprocess.context import PostprocessContext
from core.fim import cut_at_stop


def cut_at_stop_sequences(text: str, ctx: PostprocessContext) -> str:
    return cut_at_stop(text, ctx.stop)
