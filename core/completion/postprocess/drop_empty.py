"""Filter 7: a completion with nothing but whitespace is no completion."""

from __future__ import annotations

from core.completion.postprocess.context import PostprocessContext


def drop_empty(text: str, ctx: PostprocessContext) -> str:
    return text if text.strip() else ""
