"""Fixtures for the gateway tests: databases (SQLite in a temp dir; a real PostgreSQL started here in a temp
dir on 127.0.0.1), the embedded model server with two team adapters, and the gateway on 127.0.0.1."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.launch import free_port
from server.threaded import serve_in_thread

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if (d / name).is_file():
            return str(d / name)
    return shutil.which(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server in a temporary directory on 127.0.0.1 (Debian's package); yields its base URL."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); the PostgreSQL storage tests need it")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="ih-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the package's `postgres` user
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    log = root / "log"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                        f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c max_connections=200", "start"],
                       check=True, capture_output=True, timeout=90)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode()[-2000:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


_DB_NUMBER = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the test's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    base = request.getfixturevalue("postgres_server")
    from sqlalchemy import create_engine, text

    name = f"gw_{os.getpid()}_{next(_DB_NUMBER)}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def team_adapters_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """Two tiny LoRA adapters, one per team: `team-a` and `team-b`."""
    from tests.server.conftest import make_adapter

    root = tmp_path_factory.mktemp("team-adapters")
    make_adapter(tiny_model_dir, root / "team-a", seed=1)
    make_adapter(tiny_model_dir, root / "team-b", seed=2)
    return root


@pytest.fixture
def model_server(tiny_model_dir, team_adapters_dir) -> Iterator[Callable[..., str]]:
    """model_server(port=None, **serve options) -> URL of the embedded server with both adapters (stopped after)."""
    from server.app import create_app

    started = []

    def start(port: int | None = None, model_dir: Path | None = None, **options) -> str:
        options.setdefault("threads", 1)
        app = create_app(model_dir or tiny_model_dir, None if model_dir else team_adapters_dir, **options)
        cm = serve_in_thread(app, port=port)
        url = cm.__enter__()
        started.append((url, cm, app))
        return url

    def stop(url: str) -> None:
        entry = next(e for e in started if e[0] == url)
        started.remove(entry)
        entry[1].__exit__(None, None, None)
        entry[2].state.server.engine.close()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for _url, cm, app in reversed(started):
        with contextlib.suppress(Exception):
            cm.__exit__(None, None, None)
        app.state.server.engine.close()


@pytest.fixture
def gateway_server(tmp_path) -> Iterator[Callable[..., tuple[str, object]]]:
    """gateway_server(upstreams, **GatewayConfig fields) -> (URL, app) of a gateway on 127.0.0.1 (stopped after)."""
    from gateway.app import create_app
    from gateway.config import GatewayConfig

    started = []

    def start(upstreams: tuple[str, ...], **fields) -> tuple[str, object]:
        fields.setdefault("database_url", f"sqlite:///{tmp_path / 'gateway.db'}")
        fields.setdefault("health_interval_s", 0.2)
        app = create_app(GatewayConfig(upstreams=tuple(upstreams), **fields))
        cm = serve_in_thread(app)
        url = cm.__enter__()
        started.append(cm)
        return url, app

    yield start
    for cm in reversed(started):
        cm.__exit__(None, None, None)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
