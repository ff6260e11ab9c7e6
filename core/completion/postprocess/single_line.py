"""Filter 4: in single-line mode keep the first line only."""

from __future__ import annotations

from core.completion.postprocess.context import PostprocessContext


def keep_single_line(text: str, ctx: PostprocessContext) -> str:
    if ctx.multiline:
        return text
    return text.split("\n", 1)[0].rstrip("\r")
