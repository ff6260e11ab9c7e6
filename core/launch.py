"""Start `inhouse serve` as a subprocess and wait until /health answers (the exam, tests, benches).

`serve_subprocess(model_dir, log, args=[...])` yields the base URL on 127.0.0.1 and stops the server's process
group on exit; the server's output goes to `log`. It runs the command line, so `core` imports no component for
it. `server.threaded` is the in-process twin.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from core.errors import BackendUnavailableError

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_subprocess(model_dir: str | Path, log: Path, *, args: Sequence[str] = (),
                     env: Mapping[str, str] | None = None, ready_timeout_s: float = 120.0) -> Iterator[str]:
    """`inhouse serve --model MODEL_DIR --port FREE ARGS...`; yields its URL once /health answers 200."""
    import httpx

    port = free_port()
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--model", str(model_dir),
                                 "--port", str(port), *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise BackendUnavailableError(
                    f"inhouse serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"inhouse serve not ready after {ready_timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """Stops a process started in its own session, with its children: SIGTERM to its process group, SIGKILL
    after 10 s, then SIGKILL to members that outlived the leader (they still hold the group id). A leader that
    had already exited is left alone: its group id may have been reused."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), for choosing thread counts."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
