"""Reading the journal's events, from any thread, on read-only connections: what waits for the
forwarder, what the operator's commands select, the journal's own counts, and what lies after a
given ``seq`` (the caller says which: the journal knows nothing of the forwarder's cursor)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.models import Envelope
from sinks.journal.schema import After, Stats, Stored, read_only

_CHUNK = 500
"""``seq`` per lookup statement (within SQLite's bound parameters)."""
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


def by_seq(path: Path, seqs: Sequence[int]) -> dict[int, Stored]:
    """The events with these ``seq``, by ``seq`` (those retention deleted are not there; no
    journal yet: none): lookups on the primary key, what a page of the read model joins."""
    if not seqs or not path.exists():
        return {}
    found: dict[int, Stored] = {}
    wanted = sorted(set(seqs))
    with closing(read_only(path)) as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(f"{_STORED} WHERE seq IN ({marks})", chunk)
            found.update((row[0], _stored(row)) for row in rows)
    return found


def last_seq(path: Path) -> int:
    """The ``seq`` of the last event journaled (0: none), without counting anything."""
    with closing(read_only(path)) as conn:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(last)


def after(path: Path, seq: int) -> After:
    """The events with ``seq`` above ``seq``: how many, and when the first was received (no
    journal yet: none).

    Two lookups on the primary key, not a count over what may be millions of rows: the
    difference of the first and last ``seq``, exact when none between was deleted. Retention
    given a ``forwarded_up_to`` (a broker) deletes none above it, so above the forwarder's
    cursor it is exact.
    """
    if not path.exists():
        return After(0, None)
    with closing(read_only(path)) as conn:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        row = conn.execute(
            "SELECT seq, received_at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (seq,)
        ).fetchone()
    if row is None:
        return After(0, None)
    first, received_at = row
    return After(int(last) - int(first) + 1, float(received_at))


def marked_prefix(path: Path) -> int:
    """The last ``seq`` before the first event an earlier hub left unmarked (0: none, or a
    journal that never had marks). Earlier hubs marked each forwarded event in the journal
    (``forwarded_at``); a forwarder taking over such a journal starts after this."""
    if not path.exists():
        return 0
    with closing(read_only(path)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if "forwarded_at" not in columns:
            return 0
        (first,) = conn.execute("SELECT MIN(seq) FROM events WHERE forwarded_at IS NULL").fetchone()
        if first is not None:
            return int(first) - 1
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(last)


def stats(path: Path) -> Stats:
    """Counts over the whole journal (what of it waits for the forwarder: :func:`after`)."""
    with closing(read_only(path)) as conn:
        events, last = conn.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        (duplicates,) = conn.execute(
            "SELECT value FROM counters WHERE name = 'duplicates'"
        ).fetchone()
        (quarantined,) = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    return Stats(events, duplicates, quarantined, last)
