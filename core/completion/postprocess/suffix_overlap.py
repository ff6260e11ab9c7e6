"""Filter 2: cut where the completion starts repeating the text after the cursor.

Two cases: the end of the first line re-types what already follows the cursor on its line (`a, b)` before
`)`), and a later line repeats the first code line of the suffix (the model wrote past the hole).
"""

from __future__ import annotations

import re

from core.completion.postprocess.context import PostprocessContext

_WORD = re.compile(r"\w")
# Lines that only close a block (`}`, `end`, `endmodule`) repeat legitimately inside a completion; the
# block-end filter handles them by counting, not by matching.
_CLOSER_LINE = re.compile(r"^(?:[)\]};,\s]*|(?:end\w*|join\w*)\b[\s;]*)$")


def _first_code_line(suffix: str) -> str:
    for line in suffix.split("\n")[1:]:
        if line.strip():
            return line.strip()
    return ""


def cut_suffix_overlap(text: str, ctx: PostprocessContext) -> str:
    lines = text.split("\n")
    target = _first_code_line(ctx.suffix)
    if target and _WORD.search(target) and not _CLOSER_LINE.match(target):
        for i, line in enumerate(lines):
            if i == 0 and ctx.current_line.strip():
                continue  # the first line continues the cursor's line; it cannot equal a whole suffix line
            if line.strip() == target:
                lines = lines[:i]
                break
    rest = ctx.rest_of_line.strip()
    if rest and lines:
        first = lines[0].rstrip()
        if (not ctx.multiline or len(lines) == 1) and first.endswith(rest):
            lines[0] = first[: len(first) - len(rest)]
        elif ctx.multiline and len(lines) > 1 and lines[-1].strip() == rest:
            lines = lines[:-1]
    return "\n".join(lines)
