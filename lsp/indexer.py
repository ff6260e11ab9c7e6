"""Builds the workspace symbol index in the background, with work-done progress in the editor.

Started by the server after `initialized` for each workspace folder; files are parsed in a worker thread
so the event loop (and the editor) never waits. Open documents are re-indexed on change by the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from core import languages
from core.completion.symbols import SymbolIndex

log = logging.getLogger(__name__)

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", "build", "dist",
                       "target", ".tox", ".mypy_cache", ".pytest_cache", "out"})
MAX_FILE_BYTES = 512_000


def source_files(root: Path, limit: int) -> Iterator[Path]:
    """Files of known languages under root (skipping vendored and build folders), at most `limit`."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if languages.detect(path) is None:
                continue
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    continue
            except OSError:
                continue
            yield path
            count += 1
            if count >= limit:
                return


def index_folder(index: SymbolIndex, root: Path, limit: int, report: Callable[[int, int], None] | None = None) -> int:
    """Index every source file under root (blocking; run it in a thread). Returns the files indexed."""
    files = list(source_files(root, limit))
    for i, path in enumerate(files, start=1):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        index.update(str(path.relative_to(root)), text)
        if report is not None and (i % 25 == 0 or i == len(files)):
            report(i, len(files))
    return len(files)


async def index_in_background(index: SymbolIndex, roots: list[Path], limit: int,
                              progress: Callable[[str, int | None], None] | None = None) -> int:
    """Index the folders in a worker thread; `progress(message, percent)` is called from the event loop."""
    loop = asyncio.get_running_loop()
    total = 0

    def report(done: int, of: int) -> None:
        if progress is not None:
            loop.call_soon_threadsafe(progress, f"indexed {done}/{of} files", int(100 * done / max(1, of)))

    for root in roots:
        total += await asyncio.to_thread(index_folder, index, root, limit, report)
    log.info("symbol index: %d definitions in %d files", len(index), index.files)
    return total
