"""Filter 5: drop repetitive output: a code line that repeats the line before it, or a line that ends
in a short unit repeated many times (a small model stuck in a loop)."""

from __future__ import annotations

import re

from core.completion.postprocess.context import PostprocessContext

_LOOP = re.compile(r"(.{1,12}?)\1{7,}$")


def _stuck(line: str) -> bool:
    m = _LOOP.search(line.rstrip())
    return bool(m and m.group(1).strip())


def drop_repetitive_lines(text: str, ctx: PostprocessContext) -> str:
    lines = text.split("\n")
    previous_lines = [ln.strip() for ln in ctx.prefix.split("\n")[:-1] if ln.strip()]
    previous = previous_lines[-1] if previous_lines and not ctx.current_line.strip() else None
    for i, line in enumerate(lines):
        s = line.strip()
        if _stuck(line):
            return "\n".join(lines[:i])
        if s and len(s) >= 4 and any(ch.isalnum() for ch in s) and s == previous:
            return "\n".join(lines[:i])
        if s:
            previous = s if i > 0 or not ctx.current_line.strip() else (ctx.current_line + line).strip()
    return text
