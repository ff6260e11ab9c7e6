"""Filter 6: trim whitespace: no trailing whitespace, no space doubled with one already before the cursor."""

from __future__ import annotations

from core.completion.postprocess.context import PostprocessContext


def trim_whitespace(text: str, ctx: PostprocessContext) -> str:
    text = text.rstrip()
    if ctx.prefix.endswith((" ", "\t")) and ctx.current_line.strip():
        text = text.lstrip(" \t")
    return text
