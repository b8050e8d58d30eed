"""The shared index's schema migrations (alembic's script directory: ``env.py`` and
``versions/``), applied at the worker's start by :func:`sinks.index_pg.migrate.upgrade`."""
