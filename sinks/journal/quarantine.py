"""The quarantine table: requests the parsers refused, kept whole for inspection and replay.

Writes (keeping, marking replayed, dropping) run on the journal writer's connection; reads
(listing, counting what waits) on read-only connections of their own, from any process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from sinks.journal.schema import Quarantined, QuarantineEntry, read_only


def insert(conn: sqlite3.Connection, entry: QuarantineEntry) -> int:
    """Keeps a request (on the writer's connection); its quarantine number."""
    cursor = conn.execute(
        "INSERT INTO quarantine (received_at, provider, callback, method, reason,"
        " content_type, headers, query, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.received_at,
            entry.provider,
            entry.callback,
            entry.method,
            entry.reason,
            entry.content_type,
            entry.headers,
            entry.query,
            entry.body,
        ),
    )
    return int(cursor.lastrowid or 0)


def mark_replayed(conn: sqlite3.Connection, seq: int, at: float) -> None:
    conn.execute("UPDATE quarantine SET replayed_at = ? WHERE seq = ?", (at, seq))


def delete(conn: sqlite3.Connection, numbers: Sequence[int]) -> list[int]:
    """Deletes the given entries, replayed or not; the numbers of those that were there."""
    found = []
    for seq in dict.fromkeys(numbers):
        if conn.execute("DELETE FROM quarantine WHERE seq = ?", (seq,)).rowcount:
            found.append(seq)
    return found


def delete_replayed_before(conn: sqlite3.Connection, before: float, limit: int) -> int:
    """Deletes at most ``limit`` entries replayed before ``before`` (epoch seconds); how many.
    Entries never replayed are not touched: they are what the quarantine is for."""
    cursor = conn.execute(
        "DELETE FROM quarantine WHERE seq IN (SELECT seq FROM quarantine"
        " WHERE replayed_at IS NOT NULL AND replayed_at < ? ORDER BY seq LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount


def waiting(path: Path) -> int:
    """Entries not replayed yet (``hub_quarantine_requests``): a count over a partial index
    (``quarantine_waiting``), never over the requests' bytes."""
    with closing(read_only(path)) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM quarantine WHERE replayed_at IS NULL"
        ).fetchone()
    return int(count)


def size(entry: QuarantineEntry) -> int:
    """The bytes an entry takes, about."""
    return len(entry.headers) + len(entry.query) + len(entry.body)


def quarantined(
    path: Path, *, seq: int | None = None, include_replayed: bool = False
) -> list[Quarantined]:
    """Quarantined requests, oldest first (one by number; replayed ones only if asked)."""
    clauses = ["1"]
    params: list[Any] = []
    if seq is not None:
        clauses.append("seq = ?")
        params.append(seq)
    if not include_replayed and seq is None:
        clauses.append("replayed_at IS NULL")
    # the clauses are fixed text; values are bound parameters
    where = " AND ".join(clauses)
    columns = "seq, received_at, provider, callback, method, reason, content_type, headers"
    query = f"SELECT {columns}, query, body, replayed_at FROM quarantine WHERE {where} ORDER BY seq"  # noqa: S608
    with closing(read_only(path)) as conn:
        rows = conn.execute(query, params).fetchall()
    return [
        Quarantined(
            row[0],
            QuarantineEntry(
                received_at=row[1],
                provider=row[2],
                callback=row[3],
                method=row[4],
                reason=row[5],
                content_type=row[6],
                headers=row[7],
                query=bytes(row[8]),
                body=bytes(row[9]),
            ),
            row[10],
        )
        for row in rows
    ]
