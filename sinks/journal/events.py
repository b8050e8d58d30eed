"""What the writer does to the ``events`` table: append (insert only, nothing looked up),
delete old events.

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
"""Rows per statement: within SQLite's 999 bound parameters of old versions (8 a row)."""


def row_of(event: Event) -> Row:
    """An event as the ``events`` table takes it.

    The words as plain ``str`` (a StrEnum's ``str()`` is its value): SQLite binds a ``str``
    subclass through its adaptation lookups, about a microsecond more a column, and ``.value``
    is a Python-level property; this runs on every callback."""
    data = event.data
    return (
        event.id,
        str(data.provider),
        str(data.kind),
        event.type,
        event.routing_key,
        event.time.timestamp(),
        data.received_at.timestamp(),
        event.to_json(),
    )


def one_statement(appends: list[list[Row]]) -> bool:
    """The rows of these appends go in one INSERT statement (:func:`append`)."""
    return sum(len(rows) for rows in appends) <= _CHUNK


def append(conn: sqlite3.Connection, appends: list[list[Row]]) -> Iterator[None]:
    """Inserts the rows of every append of the batch, in order: a few statements for the whole
    batch, nothing read (retries are the pipeline worker's to recognize); one result per
    append."""
    rows = [row for append in appends for row in append]
    for some in _chunks(rows):
        values = ", ".join([_INSERT_ROW] * len(some))  # placeholders only: values are bound
        conn.execute(
            f"INSERT INTO events ({_COLUMNS}) VALUES {values}",  # noqa: S608
            [value for row in some for value in row],
        )
    return iter([None] * len(appends))


def delete_received_before(
    conn: sqlite3.Connection, received_before: float, up_to: int, limit: int
) -> int:
    """Deletes up to ``limit`` events received before the time with ``seq`` up to ``up_to``,
    oldest first; how many. Without an index on ``received_at``, the oldest are found by
    walking the primary key from the start: events arrive in time order, so the walk stops at
    the first ``limit`` old ones (once an hour, a walk to the first recent one)."""
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
