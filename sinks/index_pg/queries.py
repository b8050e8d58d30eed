"""Lookups of every replica's events in the shared index, duplicates left out, newest first
(by ``n``, the order they were recorded in): the first of the read model's, by message and by
phone number; the console's and the API's use of them is still to come."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

__all__ = ["Found", "by_message", "by_phone"]


class Found(NamedTuple):
    """An event found: its place in the shared order, the replica that took it and its
    ``seq`` there, when it was received, its CloudEvents document as journaled."""

    n: int
    replica: str
    seq: int
    received_at: datetime
    body: bytes


_COLUMNS = "n, replica, seq, received_at, body"


def by_message(
    conn: psycopg.Connection[Any], provider: str, message_id: str, *, limit: int = 100
) -> list[Found]:
    """A message's events (the provider's message id), whichever replica took them."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE message_id = %s AND provider = %s"  # noqa: S608
        " AND NOT duplicate ORDER BY n DESC LIMIT %s",
        (message_id, provider, limit),
    ).fetchall()
    return [_found(row) for row in rows]


def by_phone(
    conn: psycopg.Connection[Any], numbers: Sequence[str], *, limit: int = 50
) -> list[Found]:
    """The events whose sender or recipient is one of ``numbers`` (E.164, as the parsers
    store them): one arm per column, each on its own index and cut at the page, merged."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE n IN ("  # noqa: S608
        " (SELECT n FROM events WHERE sender = ANY(%(numbers)s) AND NOT duplicate"
        "  ORDER BY n DESC LIMIT %(limit)s)"
        " UNION"
        " (SELECT n FROM events WHERE recipient = ANY(%(numbers)s) AND NOT duplicate"
        "  ORDER BY n DESC LIMIT %(limit)s)"
        ") ORDER BY n DESC LIMIT %(limit)s",
        {"numbers": list(numbers), "limit": limit},
    ).fetchall()
    return [_found(row) for row in rows]


def _found(row: tuple[Any, ...]) -> Found:
    n, replica, seq, received_at, body = row
    return Found(int(n), str(replica), int(seq), received_at, bytes(body))
