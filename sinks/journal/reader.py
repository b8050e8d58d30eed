"""Reading the journal's events, from any thread, on read-only connections: what waits for the
forwarder, what the operator's commands select, and the counts of ``hub journal stats``."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.models import Envelope
from sinks import progress
from sinks.journal.schema import Stats, Stored, read_only

_STORED = "SELECT seq, provider, received_at, id, type, routing_key, time, body FROM events"


def _stored(row: tuple[Any, ...]) -> Stored:
    seq, provider, received_at, id_, type_, key, when, body = row
    envelope = Envelope(id_, type_, key, datetime.fromtimestamp(when, UTC), bytes(body))
    return Stored(seq, provider, received_at, envelope)


_PENDING = f"{_STORED} WHERE seq > ? ORDER BY seq LIMIT ?"


class PendingReader:
    """Events with ``seq`` above the forwarder's cursor, in arrival order, on one read-only
    connection opened at the first read and kept open (the forwarder asks many times a second;
    one caller at a time, from any thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def read(self, after: int, limit: int) -> list[Stored]:
        return [_stored(r) for r in self._connection().execute(_PENDING, (after, limit))]

    def last_seq(self) -> int:
        """The ``seq`` of the last event journaled (0: none)."""
        (last,) = self._connection().execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(last)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = read_only(self.path, any_thread=True)
        return self._conn


def select(
    path: Path,
    *,
    after: int = 0,
    limit: int = 1000,
    since: float | None = None,
    until: float | None = None,
    provider: str | None = None,
    kind: str | None = None,
) -> list[Stored]:
    """Events with ``seq`` above ``after`` matching the filters (reception time, provider,
    kind), in arrival order."""
    clauses: list[str] = ["seq > ?"]
    params: list[Any] = [after]
    for clause, value in (
        ("received_at >= ?", since),
        ("received_at < ?", until),
        ("provider = ?", provider),
        ("kind = ?", kind),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    with closing(read_only(path)) as conn:
        rows = conn.execute(
            f"{_STORED} WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?",
            (*params, limit),
        ).fetchall()
    return [_stored(r) for r in rows]


def last_seq(path: Path) -> int:
    """The ``seq`` of the last event journaled (0: none), without counting anything."""
    with closing(read_only(path)) as conn:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(last)


def stats(path: Path) -> Stats:
    """Counts over the whole journal (events after the forwarder's cursor are unforwarded)."""
    forwarded = progress.read(path.parent)
    cursor = forwarded.cursor if forwarded is not None else 0
    with closing(read_only(path)) as conn:
        events, last = conn.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        unforwarded, oldest = conn.execute(
            "SELECT COUNT(*), MIN(received_at) FROM events WHERE seq > ?", (cursor,)
        ).fetchone()
        (duplicates,) = conn.execute(
            "SELECT value FROM counters WHERE name = 'duplicates'"
        ).fetchone()
        (quarantined,) = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    return Stats(events, unforwarded, oldest, duplicates, quarantined, last)
