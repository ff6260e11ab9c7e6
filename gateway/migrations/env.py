"""Alembic environment of the gateway: run by `gateway.db.migrate` with the connection it opened."""

from __future__ import annotations

from alembic import context

from gateway.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
