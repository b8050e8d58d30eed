"""What the writer does to the ``events`` table: append without duplicates, delete old events.

Each function runs on the writer's connection, inside the transaction of a batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TypeVar

from core.models import Event
from sinks.journal.schema import Row

T = TypeVar("T")

_COLUMNS = "id, provider, kind, type, routing_key, time, received_at, body"
_INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 120
"""Rows per statement: within SQLite's 999 bound parameters of old versions (8 a row, 1 an id)."""


def row_of(event: Event) -> Row:
    """An event as the ``events`` table takes it."""
    return (
        event.id,
        event.data.provider.value,
        event.data.kind.value,
        event.type,
        event.routing_key,
        event.time.timestamp(),
        event.data.received_at.timestamp(),
        event.to_json(),
    )


def append(
    conn: sqlite3.Connection, appends: list[list[Row]], dedup_window: float
) -> Iterator[list[bool]]:
    """Writes the rows of every append of the batch that are not duplicates (an id already
    journaled within ``dedup_window`` seconds of reception); for each append, which of its rows
    were new.

    A few statements for the whole batch, not two a row."""
    rows = [row for append in appends for row in append]
    latest: dict[str, float] = {}  # the last reception of each id already journaled
    ids = list({row[0] for row in rows})
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        latest.update(
            conn.execute(
                f"SELECT id, MAX(received_at) FROM events WHERE id IN ({marks})"  # noqa: S608
                " GROUP BY id",
                chunk,
            ).fetchall()
        )
    fresh_rows: list[Row] = []
    flags: list[list[bool]] = []
    for append in appends:
        flags.append([])
        for row in append:
            last = latest.get(row[0])
            fresh = last is None or last < row[6] - dedup_window
            flags[-1].append(fresh)
            if fresh:
                fresh_rows.append(row)
                latest[row[0]] = row[6]  # a second copy in the same batch is a duplicate
    for some in _chunks(fresh_rows):
        values = ", ".join([_INSERT_ROW] * len(some))  # placeholders only: values are bound
        conn.execute(
            f"INSERT INTO events ({_COLUMNS}) VALUES {values}",  # noqa: S608
            [value for row in some for value in row],
        )
    duplicates = len(rows) - len(fresh_rows)
    if duplicates:
        conn.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'duplicates'", (duplicates,)
        )
    return iter(flags)


def delete_received_before(
    conn: sqlite3.Connection, received_before: float, up_to: int, limit: int
) -> int:
    """Deletes up to ``limit`` events received before the time with ``seq`` up to ``up_to``,
    oldest first; how many."""
    cursor = conn.execute(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
        " WHERE received_at < ? AND seq <= ? ORDER BY seq LIMIT ?)",
        (received_before, up_to, limit),
    )
    return cursor.rowcount


def touch(conn: sqlite3.Connection) -> None:
    """A write that changes nothing: the probe of a journal that could not write."""
    conn.execute("UPDATE counters SET value = value WHERE name = 'duplicates'")


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
