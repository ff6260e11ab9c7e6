"""The gateway's database: an engine for a SQLAlchemy URL, and the Alembic migrations brought up to date.

SQLite (the default, one file) runs in WAL mode with `synchronous=FULL`, so a transaction that committed is on
disk before the commit returns and a kill -9 loses none; foreign keys are switched on. PostgreSQL comes by URL
(`postgresql+psycopg://...`). `open_database(url)` is what the gateway and `inhouse admin` call.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from core.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def create(url: str) -> Engine:
    """An engine for `url`; a bad URL or missing driver is a ConfigError naming `database_url`."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"`database_url` must be a SQLAlchemy URL with an installed driver, got {url!r}: {exc}") \
            from exc
    return engine


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (a fresh database gets the whole schema)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise ConfigError(f"`database_url`: cannot open the database {engine.url!r}: {exc.orig}") from exc


def open_database(url: str) -> Engine:
    engine = create(url)
    migrate(engine)
    log.debug("database %s at revision head (tables: %s)", engine.url, ", ".join(inspect(engine).get_table_names()))
    return engine
