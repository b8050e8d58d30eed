"""The shared index's schema brought to this hub's version, by alembic, at the worker's start.

Replicas start together: each one's upgrade takes a transaction-level advisory lock first, so
that one applies the migrations and the others, once it has committed, find them applied (a
second start is a no-op: alembic's ``alembic_version`` says the head is there). A database of a
newer hub (a revision this one does not know) is refused, as the local index refuses a newer
file: an older hub must not write into it (its worker waits: ``SharedIndex.migrate``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK = 0x68756269  # "hubi": the advisory lock of the shared index's migrations


class NewerSchema(RuntimeError):
    """The shared index was migrated by a newer hub."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The revision this hub's migrations end at."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def _engine(url: str, **connect: object) -> sqlalchemy.Engine:
    """An engine on psycopg's own connection (libpq reads the URL, password and all, as the
    worker's pool does; SQLAlchemy never parses nor logs it)."""
    return sqlalchemy.create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(url, **connect),  # type: ignore[arg-type]
        poolclass=NullPool,
    )


def upgrade(url: str, *, connect_timeout: int = 10) -> str | None:
    """Applies the migrations not applied yet, under the lock; the revision found before
    (None: an empty database). Raises :class:`NewerSchema` for a newer hub's database."""
    config = _config()
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    engine = _engine(url, connect_timeout=connect_timeout, application_name="callback-hub")
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
            found = MigrationContext.configure(conn).get_current_revision()
            if found is not None and found not in known:
                raise NewerSchema(f"shared index at revision {found}, of a newer hub")
            config.attributes["connection"] = conn
            # alembic's own INFO lines (its plugins, its context) tell an operator nothing:
            # what was applied is said here, once
            logging.getLogger("alembic").setLevel(logging.WARNING)
            command.upgrade(config, "head")
            now = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if now != found:
        log.info("shared index: schema migrated from %s to %s", found or "nothing", now)
    return found


def current(url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = _engine(url, connect_timeout=10)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
