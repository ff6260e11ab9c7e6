"""Verilator's own code coverage: line and toggle points read from the `coverage.dat` a `--coverage` build writes.

The ladder builds Verilator environments with `--coverage-line --coverage-toggle` (`VERIFENV_COVERAGE=1`),
keeps the smoke run's `coverage.dat` next to its reports, and L4 shows `summary()`; the same file feeds
`verilator_coverage --annotate` or `--write-info` (lcov) for existing tooling.
"""

from __future__ import annotations

import re
from pathlib import Path

_POINT = re.compile(r"^C '(?P<key>.*)' (?P<count>\d+)\s*$")


def summary(path: Path) -> dict[str, dict[str, float | int]]:
    """{kind: {"points", "hit", "share"}} for line, toggle, branch and expression points in a coverage.dat."""
    kinds: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _POINT.match(line)
        if match is None:
            continue
        fields = dict(item.split("\x02", 1) for item in match.group("key").split("\x01") if "\x02" in item)
        page = fields.get("page", "")
        kind = page.split("/", 1)[0].removeprefix("v_") or "other"
        tally = kinds.setdefault(kind, [0, 0])
        tally[0] += 1
        tally[1] += int(match.group("count")) > 0
    return {kind: {"points": n, "hit": hit, "share": round(hit / n, 4) if n else 0.0}
            for kind, (n, hit) in sorted(kinds.items())}
