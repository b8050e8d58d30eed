"""The read model's lookups, on a read-only connection to the worker's file: events matching
filters (newest first, a page at a time), and one message: its timeline, its current state, the
replies it got and the message it answers.

Duplicates are never read. Rows give ``seq`` and what the lookups need: the events' documents
are the journal's, joined by ``seq`` in ``hub`` (this package never opens the journal).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinks import lookups
from sinks.index.schema import INDEX_FILE, VERSION, read_only, version
from sinks.lookups import Filters

TIMELINE_LIMIT = 1000
"""Events read of one message's timeline, and of its replies (the oldest ones)."""
NARROW_RANGE = 20_000
"""A range of the provider's time holding fewer events than this is read on its index, then
sorted by ``seq``; a wider one is scanned newest first, which gives a page without sorting the
whole range (SQLite cannot tell them apart: a capped count on the index does)."""
RECEPTION_SLACK = 3600.0
"""Seconds a reception time may be out of ``seq`` order (a request's body and its commit take
seconds, bounded by their timeouts). A reception range is first made a ``seq`` range that much
wider, by bisection on the primary key, then filtered exactly."""


class NotReady(RuntimeError):
    """The index file is of an older format: the worker upgrades it when it starts."""


@dataclass(frozen=True, slots=True)
class Hit:
    """An event found: its ``seq`` in the journal and when it was received (epoch seconds)."""

    seq: int
    received_at: float


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a message's timeline (or one of its replies)."""

    seq: int
    time: float
    """The provider's time, epoch seconds."""
    received_at: float
    kind: str
    state: str
    final: bool
    failure: str | None
    message_id: str | None


Message = lookups.Message[Step]
"""A message as the read model knows it (``sinks.lookups.Message``; made by
its class, not this alias: a frozen dataclass with slots refuses the alias's
``__orig_class__``)."""


_STEP = "SELECT seq, time, received_at, kind, state, final, failure, message_id FROM indexed"


class Reader:
    """Lookups on one read-only connection (no file yet: nothing found)."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self._conn = conn

    def search(
        self,
        filters: Filters,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[Hit]:
        """Events matching ``filters``, newest first (by ``seq``), ``seq`` below ``before`` and
        above ``after`` (the console's live view: what came since)."""
        if self._conn is None:
            return []
        clauses, params = self._where(filters, before, after)
        where = " AND ".join(clauses)
        if not filters.parties:
            sql = f"SELECT seq, received_at FROM indexed WHERE {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608
            rows = self._conn.execute(sql, (*params, limit))
            return [Hit(int(seq), float(at)) for seq, at in rows]
        # One arm per column and number, each on its own index, in seq order, cut at ``limit``:
        # an OR would collect every match of a busy number before sorting them.
        arms: list[str] = []
        values: list[Any] = []
        for party in filters.parties:
            for column in ("sender", "recipient"):
                condition = f"{column} = ?"
                values.append(party.value)
                if party.providers is not None:
                    condition += f" AND provider IN ({', '.join('?' * len(party.providers))})"
                    values.extend(party.providers)
                arms.append(
                    f"SELECT * FROM (SELECT seq, received_at FROM indexed"  # noqa: S608
                    f" WHERE {condition} AND {where} ORDER BY seq DESC LIMIT ?)"
                )
                values.extend([*params, limit])
        sql = " UNION ".join(arms) + " ORDER BY seq DESC LIMIT ?"
        return [Hit(int(seq), float(at)) for seq, at in self._conn.execute(sql, (*values, limit))]

    def _where(
        self, filters: Filters, before: int | None, after: int | None = None
    ) -> tuple[list[str], list[Any]]:
        """The clauses (and their values) of what every event found must be."""
        clauses = ["duplicate = 0"]
        params: list[Any] = []
        time = "time" if self._narrow(filters.since, filters.until) else "+time"  # + : no index
        pairs: Sequence[tuple[str, Any]] = (
            ("provider = ?", filters.provider),
            ("channel = ?", filters.channel),
            ("kind = ?", filters.kind),
            ("state = ?", filters.state),
            ("failure = ?", filters.failure),
            ("message_id = ?", filters.message_id),
            ("reference = ?", filters.reference),
            (f"{time} >= ?", filters.since),
            (f"{time} < ?", filters.until),
            ("received_at >= ?", filters.received_since),
            ("received_at < ?", filters.received_until),
            ("seq < ?", before),
            ("seq > ?", after),
        )
        for clause, value in pairs:
            if value is not None:
                clauses.append(clause)
                params.append(value)
        for clause, at in (
            ("seq >= ?", _minus(filters.received_since, RECEPTION_SLACK)),
            ("seq < ?", _minus(filters.received_until, -RECEPTION_SLACK)),
        ):
            if at is not None:
                clauses.append(clause)
                params.append(self._first_received(at))
        return clauses, params

    def _narrow(self, since: float | None, until: float | None) -> bool:
        """Whether the provider's times in this range are few (see :data:`NARROW_RANGE`)."""
        assert self._conn is not None
        if since is None and until is None:
            return False
        (count,) = self._conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM indexed WHERE time >= ? AND time < ? LIMIT ?)",
            (-1e18 if since is None else since, 1e18 if until is None else until, NARROW_RANGE),
        ).fetchone()
        return int(count) < NARROW_RANGE

    def _first_received(self, at: float) -> int:
        """The first ``seq`` whose reception is at or after ``at``, were receptions in ``seq``
        order: bisection on the primary key, a few dozen lookups."""
        assert self._conn is not None
        (first,) = self._conn.execute("SELECT MIN(seq) FROM indexed").fetchone()  # (one each:
        (last,) = self._conn.execute("SELECT MAX(seq) FROM indexed").fetchone()  # not a scan)
        if first is None:
            return 0
        low, high = int(first), int(last) + 1
        while low < high:
            middle = (low + high) // 2
            row = self._conn.execute(
                "SELECT seq, received_at FROM indexed WHERE seq >= ? ORDER BY seq LIMIT 1",
                (middle,),
            ).fetchone()
            if row is None or row[1] >= at:
                high = middle
            else:
                low = int(row[0]) + 1
        return low

    def per_minute(self, since: float, until: float) -> list[tuple[int, str, str, int]]:
        """Events received in the minutes from the one of ``since`` up to the one of ``until``
        (excluded) counted by minute (its start, epoch seconds), provider and state:
        ``(minute, provider, state, count)``, oldest first. Read from the counts the worker
        keeps by minute (``minutes``): the cost is the minutes', not their events'."""
        if self._conn is None:
            return []
        rows = self._conn.execute(
            "SELECT minute, provider, state, count FROM minutes WHERE minute >= ? AND minute < ?"
            " ORDER BY minute",
            (int(since // 60) * 60, int(until // 60) * 60),
        )
        return [(int(m), str(p), str(s), int(n)) for m, p, s, n in rows]

    def message(self, provider: str, message_id: str) -> Message | None:
        """The message's timeline, its replies and what it answers (None: none of them)."""
        if self._conn is None:
            return None
        timeline = self._steps("message_id = ? AND provider = ?", (message_id, provider))
        replies = self._steps("related_message_id = ? AND provider = ?", (message_id, provider))
        if not timeline and not replies:
            return None
        (answers,) = self._conn.execute(
            "SELECT related_message_id FROM indexed WHERE message_id = ? AND provider = ?"
            " AND duplicate = 0 AND related_message_id IS NOT NULL LIMIT 1",
            (message_id, provider),
        ).fetchone() or (None,)
        return lookups.Message(provider, message_id, timeline, replies, answers)

    def _steps(self, condition: str, params: tuple[str, ...]) -> list[Step]:
        assert self._conn is not None
        rows = self._conn.execute(
            f"{_STEP} WHERE {condition} AND duplicate = 0 ORDER BY time, seq LIMIT ?",
            (*params, TIMELINE_LIMIT),
        )
        return [
            Step(int(r[0]), float(r[1]), float(r[2]), r[3], r[4], bool(r[5]), r[6], r[7])
            for r in rows
        ]


@contextmanager
def reading(data_dir: Path) -> Iterator[Reader]:
    """A :class:`Reader` on the data directory's index, closed on the way out; ``NotReady``
    while the file is of an older format (until the worker has upgraded it)."""
    conn = read_only(data_dir / INDEX_FILE)
    if conn is None:
        yield Reader(None)
        return
    with closing(conn):
        found = version(conn)
        if found < VERSION:
            empty = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
            if not empty:
                raise NotReady(f"the index is being upgraded (format {found} to {VERSION})")
            yield Reader(None)
            return
        yield Reader(conn)


def _minus(at: float | None, seconds: float) -> float | None:
    return None if at is None else at - seconds
