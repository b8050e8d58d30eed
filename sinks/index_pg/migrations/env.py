"""Alembic's environment: the migrations run on the connection :func:`sinks.index_pg.migrate.
upgrade` opened and locked (``config.attributes["connection"]``), in its transaction."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
