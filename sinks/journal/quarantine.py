"""The quarantine table: requests the parsers refused, kept whole for inspection and replay."""

from __future__ import annotations

import sqlite3
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
