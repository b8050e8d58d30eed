"""The quarantine table: requests the parsers refused, kept whole for inspection and replay.

Writes (keeping, marking replayed, dropping) run on the journal writer's connection; reads
(listing, selecting by a :class:`QuarantineSelection`, counting what waits) on read-only
connections of their own, from any process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from sinks.journal.schema import (
    Quarantined,
    QuarantineEntry,
    QuarantineSelection,
    QuarantineSummary,
    read_only,
)


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
    return _whole(path, " AND ".join(clauses), params, "ORDER BY seq")


def _whole(path: Path, where: str, params: Sequence[Any], tail: str) -> list[Quarantined]:
    """Whole entries ``WHERE`` the given fixed text (values bound), ``tail`` ordering them."""
    columns = "seq, received_at, provider, callback, method, reason, content_type, headers"
    query = f"SELECT {columns}, query, body, replayed_at FROM quarantine WHERE {where} {tail}"  # noqa: S608
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


_JULIAN_EPOCH = 2440587.5
"""The Julian day of 1970-01-01T00:00Z: ``received_at`` is ISO 8601 text, which SQLite's
``julianday`` reads (offset included, to the millisecond)."""


def _where(selection: QuarantineSelection) -> tuple[list[str], list[Any]]:
    """The clauses (fixed text) and bound values of a selection."""
    clauses: list[str] = []
    params: list[Any] = []
    if selection.replayed is not None:
        clauses.append(f"replayed_at IS {'NOT ' if selection.replayed else ''}NULL")
    for clause, value in (
        ("provider = ?", selection.provider),
        ("callback = ?", selection.callback),
        ("instr(lower(reason), lower(?)) > 0", selection.reason),
        ("julianday(received_at) >= ?", _julian(selection.since)),
        ("julianday(received_at) < ?", _julian(selection.until)),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return clauses, params


def _julian(epoch: float | None) -> float | None:
    return None if epoch is None else epoch / 86400.0 + _JULIAN_EPOCH


def summaries(
    path: Path, selection: QuarantineSelection, *, before: int | None = None, limit: int = 100
) -> list[QuarantineSummary]:
    """The selected requests with ``seq`` below ``before`` (None: any), newest first, at most
    ``limit``, without their bytes (the next page: ``before`` the last one's ``seq``)."""
    clauses, params = _where(selection)
    if before is not None:
        clauses.append("seq < ?")
        params.append(before)
    where = " AND ".join(clauses) or "1"
    columns = (
        "seq, received_at, provider, callback, method, reason, content_type,"
        " length(headers) + length(query) + length(body), replayed_at"
    )
    query = f"SELECT {columns} FROM quarantine WHERE {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608
    with closing(read_only(path)) as conn:
        rows = conn.execute(query, (*params, limit)).fetchall()
    return [QuarantineSummary(*row) for row in rows]


def counted(path: Path, selection: QuarantineSelection) -> tuple[int, int]:
    """How many requests are selected, and the greatest ``seq`` among them (0: none)."""
    clauses, params = _where(selection)
    where = " AND ".join(clauses) or "1"
    query = f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM quarantine WHERE {where}"  # noqa: S608
    with closing(read_only(path)) as conn:
        count, last = conn.execute(query, params).fetchone()
    return int(count), int(last)


def selected(
    path: Path, selection: QuarantineSelection, *, after: int, up_to: int, limit: int
) -> list[Quarantined]:
    """Whole selected requests with ``seq`` above ``after`` and up to ``up_to``, oldest first,
    at most ``limit`` (the next batch: ``after`` the last one's ``seq``)."""
    clauses, params = _where(selection)
    clauses += ["seq > ?", "seq <= ?"]
    params += [after, up_to]
    return _whole(path, " AND ".join(clauses), [*params, limit], "ORDER BY seq LIMIT ?")
