"""Serve an app with uvicorn in a background thread of this process (tests, benches, demos).

`serve_in_thread(app)` yields the base URL on 127.0.0.1 once the server accepts connections, and stops it
on exit. `inhouse serve` itself runs uvicorn in the foreground (`server.cli`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import BackendUnavailableError
from core.launch import free_port


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int | None = None,
                    startup_timeout_s: float = 30.0) -> Iterator[str]:
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise BackendUnavailableError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
