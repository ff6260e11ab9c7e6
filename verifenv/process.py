"""Run a command in its own process group under a wall-clock limit, killing the whole group past it.

Simulators outlive a killed pytest (a hung mutant keeps vvp or Vtop spinning), so the ladder, the Python twin
and the bench start every run here: a new session, and on timeout SIGKILL to the group, never by name. A
memory limit (address space, inherited by the simulator) stops a mutant whose simulation grows without bound
(one of a public FIFO's mutants took 13 GB of a shared machine in a minute).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# pytest exit codes: 0 passed, 1 tests failed, 2 interrupted, 3 internal error, 4 usage error, 5 no tests.
PYTEST_PASSED = 0
PYTEST_FAILED = 1
HARNESS_ERRORS = frozenset({2, 3, 4, 5})


@dataclass(frozen=True)
class RunResult:
    returncode: int | None  # None when the wall-clock limit was hit
    seconds: float
    output: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def harness_error(self) -> bool:
        return self.returncode in HARNESS_ERRORS or (self.returncode is not None and self.returncode < 0)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def run(cmd: Sequence[str], cwd: str | Path, env: Mapping[str, str], timeout_s: float,
        memory_limit_mb: int = 0) -> RunResult:
    """Run cmd to completion or until timeout_s, then kill its process group; output is stdout+stderr.
    With memory_limit_mb, every process of the run gets that much address space at most."""
    start = time.monotonic()

    def limit() -> None:
        size = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    proc = subprocess.Popen(list(cmd), cwd=str(cwd), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=limit if memory_limit_mb > 0 else None)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return RunResult(proc.returncode, time.monotonic() - start, out.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        return RunResult(None, time.monotonic() - start, out.decode("utf-8", "replace"))
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session, nothing else
    except ProcessLookupError:
        pass
