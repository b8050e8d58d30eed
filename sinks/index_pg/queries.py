"""The read model's lookups on every replica's events in the shared index, the same as the
local index's (``sinks.index.queries``) and for the same :class:`~sinks.lookups.Filters`:
events matching filters, newest first, a page at a time; one message: its timeline, its
current state, the replies it got and the message it answers.

Duplicates are never read (``NOT duplicate``, which the partial indexes require). The shared
order is ``n``, the identity the rows were recorded in (one replica's events in its ``seq``
order): pages are keyset pages on it, a timeline is in the provider's time then ``n``. Each
row carries its body (the other replicas cannot read its journal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from sinks import lookups
from sinks.lookups import Filters, Party

__all__ = [
    "TIMELINE_LIMIT",
    "Found",
    "Message",
    "Step",
    "by_message",
    "by_phone",
    "message",
    "search",
]

TIMELINE_LIMIT = 1000
"""Events read of one message's timeline, and of its replies (the oldest ones)."""


class Found(NamedTuple):
    """An event found: its place in the shared order, the replica that took it and its
    ``seq`` there, when it was received, its CloudEvents document as journaled."""

    n: int
    replica: str
    seq: int
    received_at: datetime
    body: bytes


class Step(NamedTuple):
    """One event of a message's timeline (or one of its replies), its body with it."""

    n: int
    replica: str
    seq: int
    time: datetime
    """The provider's time."""
    received_at: datetime
    kind: str
    state: str
    final: bool
    failure: str | None
    message_id: str | None
    body: bytes


Message = lookups.Message[Step]
"""A message as the shared index knows it (``sinks.lookups.Message``; made by
its class, not this alias: a frozen dataclass with slots refuses the alias's
``__orig_class__``)."""


_COLUMNS = "n, replica, seq, received_at, body"
_STEP = (
    "SELECT n, replica, seq, time, received_at, kind, state, final, failure, message_id, body"
    " FROM events"
)


def search(
    conn: psycopg.Connection[Any],
    filters: Filters,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[Found]:
    """Events matching ``filters``, newest first (by ``n``), ``n`` below ``before`` and above
    ``after`` (the console's live view: what came since)."""
    where, params = _where(filters, before, after)
    if not filters.parties:
        rows = _rows(
            conn,
            f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY n DESC LIMIT %s",  # noqa: S608
            (*params, limit),
        )
        return [_found(row) for row in rows]
    # One arm per column and number, each on its own index in ``n`` order and cut at the page,
    # merged: an OR would collect every event of a busy number before sorting them.
    arms: list[str] = []
    values: list[Any] = []
    for party in filters.parties:
        for column in ("sender", "recipient"):
            condition, given = _party(column, party)
            arms.append(
                f"(SELECT n FROM events WHERE {condition} AND {where}"  # noqa: S608
                " ORDER BY n DESC LIMIT %s)"
            )
            values.extend([*given, *params, limit])
    rows = _rows(
        conn,
        f"SELECT {_COLUMNS} FROM events WHERE n IN ({' UNION '.join(arms)})"  # noqa: S608
        " ORDER BY n DESC LIMIT %s",
        (*values, limit),
    )
    return [_found(row) for row in rows]


def message(conn: psycopg.Connection[Any], provider: str, message_id: str) -> Message | None:
    """The message's timeline, its replies and what it answers (None: none of them)."""
    key = (_text(message_id), provider)
    timeline = _steps(conn, "message_id = %s AND provider = %s", key)
    replies = _steps(conn, "related_message_id = %s AND provider = %s", key)
    if not timeline and not replies:
        return None
    rows = _rows(
        conn,
        "SELECT related_message_id FROM events WHERE message_id = %s AND provider = %s"
        " AND NOT duplicate AND related_message_id IS NOT NULL LIMIT 1",
        key,
    )
    return lookups.Message(provider, message_id, timeline, replies, rows[0][0] if rows else None)


def by_message(
    conn: psycopg.Connection[Any], provider: str, message_id: str, *, limit: int = 100
) -> list[Found]:
    """A message's events (the provider's message id), whichever replica took them."""
    return search(conn, Filters(provider=provider, message_id=message_id), limit=limit)


def by_phone(
    conn: psycopg.Connection[Any], numbers: Sequence[str], *, limit: int = 50
) -> list[Found]:
    """The events whose sender or recipient is one of ``numbers`` (E.164, as the parsers
    store them)."""
    return search(conn, Filters(parties=tuple(Party(n) for n in numbers)), limit=limit)


def _where(filters: Filters, before: int | None, after: int | None) -> tuple[str, list[Any]]:
    """The clauses (and their values) of what every event found must be."""
    clauses = ["NOT duplicate"]
    params: list[Any] = []
    pairs: Sequence[tuple[str, Any]] = (
        ("provider = %s", filters.provider),
        ("channel = %s", filters.channel),
        ("kind = %s", filters.kind),
        ("state = %s", filters.state),
        ("failure = %s", filters.failure),
        ("message_id = %s", filters.message_id),
        ("reference = %s", filters.reference),
        ("time >= to_timestamp(%s)", filters.since),
        ("time < to_timestamp(%s)", filters.until),
        ("received_at >= to_timestamp(%s)", filters.received_since),
        ("received_at < to_timestamp(%s)", filters.received_until),
        ("n < %s", before),
        ("n > %s", after),
    )
    for clause, value in pairs:
        if value is not None:
            clauses.append(clause)
            params.append(_text(value) if isinstance(value, str) else value)
    return " AND ".join(clauses), params


def _party(column: str, party: Party) -> tuple[str, list[Any]]:
    if party.providers is None:
        return f"{column} = %s", [_text(party.value)]
    return f"{column} = %s AND provider = ANY(%s)", [_text(party.value), list(party.providers)]


def _text(value: str) -> str:
    """A value looked for as the writer stores text (PostgreSQL's holds no NUL: a provider's
    was made U+FFFD); a lone surrogate, which no event holds, too."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode()
    except UnicodeEncodeError:
        value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def _steps(conn: psycopg.Connection[Any], condition: str, params: tuple[str, ...]) -> list[Step]:
    rows = _rows(
        conn,
        f"{_STEP} WHERE {condition} AND NOT duplicate ORDER BY time, n LIMIT %s",
        (*params, TIMELINE_LIMIT),
    )
    return [
        Step(int(r[0]), str(r[1]), int(r[2]), r[3], r[4], r[5], r[6], bool(r[7]), r[8], r[9],
             bytes(r[10]))
        for r in rows
    ]  # fmt: skip


def _rows(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> list[Any]:
    """The statement's rows; none while the schema is not there (no replica's worker has
    recorded anything yet: it makes the schema at its start), as the local index finds nothing
    before its file exists."""
    try:
        return conn.execute(sql, params).fetchall()
    except psycopg.errors.UndefinedTable:
        if not conn.autocommit:
            conn.rollback()
        return []


def _found(row: tuple[Any, ...]) -> Found:
    n, replica, seq, received_at, body = row
    return Found(int(n), str(replica), int(seq), received_at, bytes(body))


def per_minute(
    conn: psycopg.Connection[Any], *, since: int, until: int
) -> list[tuple[int, str, str, int]]:
    """Every replica's events received in the minutes of [``since``, ``until``) (epoch
    seconds, whole minutes), duplicates left out, counted by minute, provider and state:
    ``(minute, provider, state, count)``, oldest first. On the index of reception times: the
    cost is the range's events (an hour's, for the overview), bounded by the statement's
    timeout (``HUB_INDEX_TIMEOUT``)."""
    rows = conn.execute(
        "SELECT (floor(extract(epoch FROM received_at) / 60) * 60)::bigint AS minute,"
        " provider, state, count(*) FROM events"
        " WHERE received_at >= to_timestamp(%s) AND received_at < to_timestamp(%s)"
        " AND NOT duplicate GROUP BY 1, 2, 3 ORDER BY 1",
        (since // 60 * 60, until // 60 * 60),
    ).fetchall()
    return [(int(m), str(p), str(s), int(n)) for m, p, s, n in rows]
