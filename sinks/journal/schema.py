"""The journal's tables, its files, how to connect to it, and the records it gives back.

Tables:
- ``events``: insert-only, every event of every callback acknowledged, as its CloudEvents JSON
  with the columns needed to route it, in arrival order (``seq``, the primary key, its only
  index: an insert costs one B-tree append). Nothing is looked up before an insert: a
  provider's retry is journaled too, and the pipeline worker marks it duplicate in its own file
  (``sinks.index``), as it keeps its own index of the events; how far they were forwarded is
  the forwarder's file (``sinks.progress``). ``forwarded_at`` is only read from journals of
  earlier hubs; their secondary indexes (``events_id``, ``events_received``) are dropped at the
  first opening.
- ``quarantine``: requests that could not be parsed, kept whole for inspection and replay.
- ``counters``: ``duplicates``, the retries earlier hubs recognized at the callback and did not
  journal (read by ``hub journal stats``; the worker counts those it marks since).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.models import Envelope, Event, RawRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    provider     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    type         TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    time         REAL NOT NULL,
    received_at  REAL NOT NULL,
    body         BLOB NOT NULL
);
DROP INDEX IF EXISTS events_id;
DROP INDEX IF EXISTS events_received;
CREATE TABLE IF NOT EXISTS quarantine (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    provider     TEXT NOT NULL,
    callback     TEXT NOT NULL,
    method       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers      TEXT NOT NULL,
    query        BLOB NOT NULL,
    body         BLOB NOT NULL,
    replayed_at  REAL
);
CREATE INDEX IF NOT EXISTS quarantine_waiting ON quarantine (seq) WHERE replayed_at IS NULL;
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('duplicates', 0);
"""
JOURNAL_FILE = "journal.sqlite3"
FILES = ("", "-wal", "-shm")
"""Suffixes of the files SQLite keeps for the journal: the database, its WAL, the WAL's index."""
DAY = 86400.0


def connect(path: Path) -> sqlite3.Connection:
    """The writer's connection: WAL, every commit synced to disk (``synchronous=FULL``)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def read_only(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """A read-only connection (readers never take the writer's lock); ``any_thread`` for one kept
    open and used from several threads, one at a time."""
    uri = path.resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=not any_thread)


Writer = Callable[[sqlite3.Connection], Any]
"""A write a job does on the writer's connection, inside the batch's transaction."""
Row = tuple[str, str, str, str, str, float, float, bytes]
"""An event as the ``events`` table takes it (every column but ``seq``)."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A request kept whole because it could not be parsed."""

    received_at: str
    provider: str
    callback: str
    method: str
    reason: str
    content_type: str
    headers: str
    """The request headers as a JSON object."""
    query: bytes
    body: bytes

    @classmethod
    def of(cls, raw: RawRequest, reason: str, headers: Mapping[str, str]) -> QuarantineEntry:
        """``raw`` kept for ``reason`` with ``headers`` (a callback's request headers, a pull
        source's answer headers), the :data:`PRIVATE_HEADERS` left out."""
        kept = {str(k): v for k, v in headers.items() if k.lower() not in PRIVATE_HEADERS}
        return cls(
            received_at=raw.received_at.isoformat(),
            provider=raw.provider.value,
            callback=raw.callback,
            method=raw.method,
            reason=reason,
            content_type=raw.content_type,
            headers=orjson.dumps(kept).decode(),
            query=raw.query,
            body=raw.body,
        )


PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "set-cookie"})
"""Headers never kept in the quarantine (lower case): credentials and cookies, a caller's or a
provider's."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A quarantined request as stored, with its number and whether it was replayed."""

    seq: int
    entry: QuarantineEntry
    replayed_at: float | None


@dataclass(frozen=True, slots=True)
class QuarantineSummary:
    """A quarantined request without its bytes (a listing's line): their size only."""

    seq: int
    received_at: str
    provider: str
    callback: str
    method: str
    reason: str
    content_type: str
    size: int
    """Bytes of its headers, query and body."""
    replayed_at: float | None


@dataclass(frozen=True, slots=True)
class QuarantineSelection:
    """Which quarantined requests: every field given must match (None: any)."""

    provider: str | None = None
    callback: str | None = None
    replayed: bool | None = False
    """False: those waiting (not replayed yet), True: those replayed, None: both."""
    reason: str | None = None
    """A part of the reason, in any case (``timestamp`` matches ``bad_timestamp``)."""
    since: float | None = None
    """Received at or after this time (epoch seconds, to the millisecond)."""
    until: float | None = None
    """Received before this time."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as the journal holds it."""

    seq: int
    provider: str
    received_at: float
    envelope: Envelope

    def event(self) -> Event:
        return Event.from_json(self.envelope.body)


@dataclass(frozen=True, slots=True)
class Stats:
    events: int
    duplicates: int
    quarantined: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class After:
    """The events after a given ``seq``."""

    events: int
    first_received_at: float | None
    """Reception time (epoch seconds) of the first of them (None: there is none)."""
