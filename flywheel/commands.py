"""Running one `inhouse` sub-command as a stage of the cycle: its stderr to the stage's log (and the terminal,
so its progress bar shows), its `--json` answer parsed, and its death tied to the cycle's.

A child is asked by the kernel to die with the cycle (Linux `PR_SET_PDEATHSIG`), so a cycle killed with
`kill -9` leaves no trainer writing into a folder the next run resumes.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from core.errors import StageError


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a killed cycle may leave its child running; the lock still keeps cycles apart


class Inhouse:
    """`inhouse` as the cycle's stages call it: the same interpreter and the same --config file."""

    def __init__(self, config_file: Path | None, *, show_progress: bool = True,
                 python: str = sys.executable) -> None:
        self.prefix = [python, "-m", "app.cli"] + (["--config", str(config_file)] if config_file else [])
        self.show_progress = show_progress

    def run(self, args: Sequence[str | os.PathLike[str]], log: Path, *, want_json: bool = False) -> Any:
        """Run `inhouse ARGS`; the parsed JSON of its stdout when `want_json`, else its stdout text. A non-zero
        exit raises StageError with the command, the code and the last lines of the log."""
        cmd = [*self.prefix, *map(str, args)]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            fh.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent if os.name == "posix" else None)
            assert proc.stdout is not None and proc.stderr is not None
            tee = threading.Thread(target=self._tee, args=(proc.stderr, fh), daemon=True)
            tee.start()
            out = proc.stdout.read()
            code = proc.wait()
            tee.join()
            fh.write(f"[exit {code}]\n")
        text = out.decode("utf-8", errors="replace")
        if code != 0:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-8:])
            raise StageError(f"`inhouse {' '.join(map(str, args[:2]))}` failed (exit {code}); its log is "
                             f"{log}:\n{tail}")
        if not want_json:
            return text
        stripped = text.strip()
        for candidate in (stripped, stripped.splitlines()[-1] if stripped else ""):
            try:  # the whole answer, or its last line when the command also printed something before it
                return json.loads(candidate)
            except json.JSONDecodeError:
                continue
        raise StageError(f"`inhouse {' '.join(map(str, args[:2]))}` did not answer JSON: {text[-300:]!r}")

    def _tee(self, stream: IO[bytes], fh: IO[str]) -> None:
        for chunk in iter(lambda: stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096), b""):
            text = chunk.decode("utf-8", errors="replace")
            fh.write(text)
            fh.flush()
            if self.show_progress:
                sys.stderr.write(text)
                sys.stderr.flush()
