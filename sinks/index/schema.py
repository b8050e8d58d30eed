"""The index file's tables, its format versions and the upgrade from each, and its connections.

``indexed`` holds one row per journaled event (its ``seq``): what the worker decided (a
**duplicate**: a provider's retry within the window, never shown nor published) and what the
read model looks events up by. ``worker`` holds the worker's cursor, its counts, and which old
rows still lack the read model's columns (``refill_after`` < seq <= ``refill_up_to``).

Versions (``PRAGMA user_version``):

- 0 with an ``indexed`` table: the first format (before the read model): no channel, failure,
  final, related message, sender nor recipient, one ``phone`` column (the other party's
  number). Upgraded in place: the columns are added empty, ``phone`` is no longer written nor
  read (kept: dropping a column rewrites the table), and the rows there are marked for refill:
  the worker fills them from the journal's bodies (``hub.forwarder``), since this file never
  opens the journal;
- 2: the read model. Upgraded in place: the ``minutes`` table added, filled from the rows
  there (one scan, once);
- 3: ``minutes``, the events counted by the minute of their reception, provider and state
  (duplicates left out), written with each batch: the console's overview reads an hour of
  them in 60 rows per provider and state, not the hour's events (this one). A file of a
  later version is refused: an older hub must not write into it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

INDEX_FILE = "index.sqlite3"
VERSION = 3
CACHE_KIB = 16384
"""The worker's page cache (SQLite's default: 2 MiB). Each event goes into a few B-trees keyed
on random values (event id, message id, reference, recipient): with 150 000 of
``bench/lookup.py``'s events indexed, the next ones took 150 µs of CPU each with the default
cache, 104-114 with this one (the first format, with the default: 128-134), on the benchmark's
machine, batches of 512. 16 MiB of the worker's memory at most, reached early, then flat."""

TABLES = """
CREATE TABLE IF NOT EXISTS indexed (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL,
    provider            TEXT NOT NULL,
    message_id          TEXT,
    reference           TEXT,
    kind                TEXT NOT NULL,
    state               TEXT NOT NULL,
    time                REAL NOT NULL,
    received_at         REAL NOT NULL,
    duplicate           INTEGER NOT NULL,
    channel             TEXT,
    failure             TEXT,
    final               INTEGER,
    related_message_id  TEXT,
    sender              TEXT,
    recipient           TEXT
);
CREATE TABLE IF NOT EXISTS minutes (
    minute    INTEGER NOT NULL,
    provider  TEXT NOT NULL,
    state     TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (minute, provider, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS worker (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    cursor        INTEGER NOT NULL,
    counts        BLOB NOT NULL,
    refill_after  INTEGER NOT NULL DEFAULT 0,
    refill_up_to  INTEGER NOT NULL DEFAULT 0
);
"""
"""The tables (``indexed``'s columns in the order an upgraded first-format file has them)."""

INDEXES = """
CREATE INDEX IF NOT EXISTS indexed_id ON indexed (id, received_at) WHERE duplicate = 0;
CREATE INDEX IF NOT EXISTS indexed_duplicates ON indexed (seq) WHERE duplicate = 1;
CREATE INDEX IF NOT EXISTS indexed_message_id ON indexed (message_id, provider)
    WHERE message_id IS NOT NULL AND duplicate = 0;
CREATE INDEX IF NOT EXISTS indexed_related ON indexed (related_message_id, provider)
    WHERE related_message_id IS NOT NULL AND duplicate = 0;
CREATE INDEX IF NOT EXISTS indexed_reference ON indexed (reference);
CREATE INDEX IF NOT EXISTS indexed_sender ON indexed (sender)
    WHERE sender IS NOT NULL AND duplicate = 0;
CREATE INDEX IF NOT EXISTS indexed_recipient ON indexed (recipient)
    WHERE recipient IS NOT NULL AND duplicate = 0;
CREATE INDEX IF NOT EXISTS indexed_time ON indexed (time);
CREATE INDEX IF NOT EXISTS indexed_state ON indexed (state);
"""
"""Every lookup of the read model on an index (each also gives rows in ``seq`` order, SQLite's
rowid being the last column of every index): an event's id (duplicates), a message, its
replies, a reference, a party's number, a time range, a state. ``reference``, ``time`` and
``state`` are the first format's, kept as they were (not rebuilt at an upgrade)."""

FIRST_FORMAT = """
ALTER TABLE indexed ADD COLUMN channel TEXT;
ALTER TABLE indexed ADD COLUMN failure TEXT;
ALTER TABLE indexed ADD COLUMN final INTEGER;
ALTER TABLE indexed ADD COLUMN related_message_id TEXT;
ALTER TABLE indexed ADD COLUMN sender TEXT;
ALTER TABLE indexed ADD COLUMN recipient TEXT;
ALTER TABLE worker ADD COLUMN refill_after INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker ADD COLUMN refill_up_to INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS indexed_phone;
DROP INDEX IF EXISTS indexed_message;
UPDATE worker SET
    refill_after = (SELECT COALESCE(MIN(seq), 1) - 1 FROM indexed),
    refill_up_to = (SELECT COALESCE(MAX(seq), 0) FROM indexed);
"""
"""The first format to the second: the new columns empty, the old rows to refill."""

FILL_MINUTES = """
INSERT INTO minutes (minute, provider, state, count)
SELECT CAST(received_at / 60 AS INTEGER) * 60, provider, state, COUNT(*) FROM indexed
WHERE duplicate = 0 GROUP BY 1, 2, 3
"""
"""The counts by minute of the rows a file of an earlier format holds (at its upgrade)."""


class NewerIndex(RuntimeError):
    """The index file was written by a newer hub."""


def connect(path: Path) -> sqlite3.Connection:
    """The worker's connection, its file brought to this format (in one transaction)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # see sinks.index
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _upgrade(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return conn


def _upgrade(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > VERSION:
        raise NewerIndex(f"index format {version}, of a newer hub (this one reads {VERSION})")
    if version == VERSION:
        return
    rows = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'indexed'"
    ).fetchone()
    if rows is not None and version == 0:  # version 0, tables there: the first format
        for statement in _statements(FIRST_FORMAT):
            conn.execute(statement)
    for statement in _statements(TABLES + INDEXES):
        conn.execute(statement)
    if rows is not None:  # an earlier format's rows (version 0 or 2): counted by minute
        conn.execute(FILL_MINUTES)
    conn.execute(f"PRAGMA user_version = {VERSION}")


def _statements(script: str) -> list[str]:
    """A script's statements (``executescript`` would commit the transaction they belong to)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only connection on the file (none yet: None)."""
    if not path.exists():
        return None
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def version(conn: sqlite3.Connection) -> int:
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    return int(found)


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
