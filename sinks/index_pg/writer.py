"""The worker's writes to the shared index: a batch of its replica's events recorded in one
statement, the claims that deduplicate across replicas taken in it (see the package's
docstring), on a small pool of psycopg connections; retention by batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import psycopg

from core.errors import IndexUnavailable
from sinks.index_pg.migrate import NewerSchema, upgrade
from sinks.index_pg.pool import pool, short

__all__ = ["IndexUnavailable", "Record", "SharedIndex"]

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One event of a replica's batch, as its local index read and decided it."""

    seq: int
    id: str
    provider: str
    received_at: float
    duplicate: bool
    """A copy of an event this replica has within the window (its local index's decision)."""
    columns: tuple[Any, ...]
    """The read model's columns (``sinks.eventrow.COLUMNS``)."""
    body: bytes


_RECORD = """
WITH batch AS (
    SELECT * FROM unnest(
        %(seq)s::bigint[], %(id)s::text[], %(provider)s::text[], %(received_at)s::float8[],
        %(candidate)s::boolean[], %(message_id)s::text[], %(reference)s::text[],
        %(kind)s::text[], %(state)s::text[], %(time)s::float8[], %(channel)s::text[],
        %(failure)s::text[], %(final)s::boolean[], %(related_message_id)s::text[],
        %(sender)s::text[], %(recipient)s::text[], %(body)s::bytea[]
    ) AS b(seq, id, provider, received_at, candidate, message_id, reference, kind, state,
           time, channel, failure, final, related_message_id, sender, recipient, body)
),
claimed AS (
    INSERT INTO claims AS c (id, received_at, replica, seq)
    SELECT id, to_timestamp(received_at), %(replica)s, seq FROM batch WHERE candidate
    ORDER BY id
    ON CONFLICT (id) DO UPDATE
        SET received_at = excluded.received_at, replica = excluded.replica, seq = excluded.seq
        WHERE c.received_at < excluded.received_at - make_interval(secs => %(window)s)
           OR (c.replica = excluded.replica AND c.seq = excluded.seq)
    RETURNING c.seq
),
progress AS (
    INSERT INTO replicas AS r (replica, recorded_up_to, recorded_at)
    VALUES (%(replica)s, %(last)s, now())
    ON CONFLICT (replica) DO UPDATE
        SET recorded_up_to = GREATEST(r.recorded_up_to, excluded.recorded_up_to),
            recorded_at = excluded.recorded_at
)
INSERT INTO events AS e (
    replica, seq, id, provider, message_id, reference, kind, state, time, received_at,
    duplicate, channel, failure, final, related_message_id, sender, recipient, body
)
SELECT %(replica)s, b.seq, b.id, b.provider, b.message_id, b.reference, b.kind, b.state,
       to_timestamp(b.time), to_timestamp(b.received_at),
       NOT (b.candidate AND b.seq IN (SELECT seq FROM claimed)),
       b.channel, b.failure, b.final, b.related_message_id, b.sender, b.recipient, b.body
FROM batch b
ON CONFLICT (replica, seq) DO UPDATE SET duplicate = excluded.duplicate
RETURNING e.seq, e.duplicate
"""
"""A batch (its candidates' ids all different): the claims, the replica's progress and the
events in one statement; which events are duplicates."""

ORDER_LOCK = 0x6875626E  # "hubn"
"""The transaction-level advisory lock every recording transaction takes before its first
insert, held to its commit: replicas' batches are numbered (``n``) in the order they commit,
so a reader that has seen ``n`` up to some value has seen every row below it (the console's
live view polls on ``n``). Without it, a batch numbered first and committed second was never
shown by a live view that had seen the other's rows."""

_BEGIN_BACKFILL = """
INSERT INTO replicas AS r (replica, recorded_up_to, recorded_at, backfill_after, backfill_up_to)
VALUES (%(replica)s, 0, now(), 0, %(cursor)s)
ON CONFLICT (replica) DO UPDATE
    SET backfill_after = CASE WHEN r.backfill_after < r.backfill_up_to
                              THEN LEAST(r.backfill_after, r.recorded_up_to)
                              ELSE r.recorded_up_to END,
        backfill_up_to = excluded.backfill_up_to
    WHERE r.recorded_up_to < excluded.backfill_up_to
"""
"""What this replica's local index holds (up to its cursor) and the shared one does not: all of
it for a replica never seen here, the events after the last it recorded for one that ran alone
meanwhile (a backfill under way starts again no later than where it stood)."""

_BACKFILLED = """
UPDATE replicas SET backfill_after = GREATEST(backfill_after, %(done)s) WHERE replica = %(replica)s
"""

_PRUNE = """
DELETE FROM {table} WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {table} WHERE received_at < to_timestamp(%(before)s) LIMIT %(chunk)s
))
"""


class SharedIndex:
    """A replica's handle on the shared index: a pool of connections (opened in the
    background: a database away at start is tried again), the schema migrated at the first
    batch. One batch at a time (the worker's), from a thread."""

    def __init__(self, url: str, replica: str, *, timeout: float = 10.0) -> None:
        self.replica = replica
        self._url = url
        self._timeout = timeout
        self._migrated = False
        # a statement never holds the worker for long (a lock, a stalled server); a database
        # back is reached again within ``timeout`` (``pool.pool``)
        self._pool = pool(
            url,
            name="shared-index",
            timeout=timeout,
            min_size=1,
            max_size=2,
            application_name="callback-hub",
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool (committed on the way out; :class:`IndexUnavailable` when
        none can be had)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled) as exc:
            raise IndexUnavailable(short(exc)) from None
        except psycopg.errors.DeadlockDetected as exc:  # (claims are taken in order: a bug)
            raise IndexUnavailable(short(exc)) from None
        except TimeoutError as exc:  # the pool's: no connection within the timeout
            raise IndexUnavailable(short(exc)) from None

    def migrate(self) -> None:
        """The schema at this hub's version (done once; every batch waits for it). A schema
        of a newer hub (a rolling upgrade under way) is not written into: the batch waits, as
        for a database away."""
        if self._migrated:
            return
        try:
            found = upgrade(self._url, connect_timeout=max(1, int(self._timeout)))
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(short(exc)) from None
        except NewerSchema as exc:  # a rolling upgrade: this replica's turn comes
            raise IndexUnavailable(f"{exc}: waiting for this replica's upgrade") from None
        except Exception as exc:  # SQLAlchemy wraps the driver's errors
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, psycopg.OperationalError):
                raise IndexUnavailable(short(cause)) from None
            raise
        self._migrated = True
        if found is not None:
            log.debug("shared index: schema at %s", found)

    def record(self, batch: Sequence[Record], window: float) -> frozenset[int]:
        """Records a batch of this replica's events (in ``seq`` order) and takes the claims of
        those its local index did not find duplicate; the ``seq`` of those another replica
        has (within ``window`` seconds): duplicates. Recording a batch again (after a crash)
        gives the same answer."""
        if not batch:
            return frozenset()
        self.migrate()
        with self.connection() as conn:
            return self._record(conn, batch, window)

    def begin_backfill(self, cursor: int) -> tuple[int, int] | None:
        """What this replica's local index holds up to its ``cursor`` and the shared index
        does not (it ran alone before): the ``seq`` after which and up to which its events
        remain to be recorded (:meth:`backfill`), None if none. Decided once, before this
        replica's first batch is recorded, and kept here: a restart goes on where it stood."""
        self.migrate()
        with self.connection() as conn:
            conn.execute(_BEGIN_BACKFILL, {"replica": self.replica, "cursor": cursor})
            row = conn.execute(
                "SELECT backfill_after, backfill_up_to FROM replicas WHERE replica = %s",
                (self.replica,),
            ).fetchone()
        assert row is not None  # (made by the statement above)
        after, up_to = int(row[0]), int(row[1])
        return (after, up_to) if after < up_to else None

    def backfill(self, batch: Sequence[Record], window: float, done: int) -> frozenset[int]:
        """Records a batch of the backfill as :meth:`record` does (claims taken, the local
        decisions given in ``batch``), and that every event up to ``done`` is backfilled, in
        the same transaction; the ``seq`` of those another replica has."""
        self.migrate()
        with self.connection() as conn:
            duplicates = self._record(conn, batch, window) if batch else frozenset[int]()
            conn.execute(_BACKFILLED, {"replica": self.replica, "done": done})
        return duplicates

    def prune(self, received_before: float, chunk: int = 5000) -> int:
        """Forgets events and claims received before the given time, ``chunk`` rows a
        transaction (no lock held for long); how many events."""
        self.migrate()
        deleted = 0
        for table in ("events", "claims"):
            statement = _PRUNE.format(table=table)
            while True:
                with self.connection() as conn:
                    count = conn.execute(
                        statement, {"before": received_before, "chunk": chunk}
                    ).rowcount
                if table == "events":
                    deleted += count
                if count < chunk:
                    break
        return deleted

    def _record(
        self, conn: psycopg.Connection[Any], batch: Sequence[Record], window: float
    ) -> frozenset[int]:
        duplicates: set[int] = set()
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ORDER_LOCK,))
        for chunk in _chunks(batch):
            rows = conn.execute(_RECORD, self._params(chunk, window)).fetchall()
            duplicates.update(
                seq for seq, duplicate in rows if duplicate and seq in chunk.candidates
            )
        return frozenset(duplicates)

    def _params(self, chunk: _Chunk, window: float) -> dict[str, Any]:
        columns = list(zip(*(r.columns for r in chunk.records), strict=True))
        text = [[_text(v) for v in column] for column in columns]
        return {
            "replica": self.replica,
            "window": window,
            "last": chunk.records[-1].seq,
            "seq": [r.seq for r in chunk.records],
            "id": [r.id for r in chunk.records],
            "provider": [r.provider for r in chunk.records],
            "received_at": [r.received_at for r in chunk.records],
            "candidate": [not r.duplicate for r in chunk.records],
            "message_id": text[0],
            "reference": text[1],
            "kind": text[2],
            "state": text[3],
            "time": list(columns[4]),
            "channel": text[5],
            "failure": text[6],
            "final": [None if v is None else bool(v) for v in columns[7]],
            "related_message_id": text[8],
            "sender": text[9],
            "recipient": text[10],
            "body": [r.body for r in chunk.records],
        }


class _Chunk(NamedTuple):
    records: list[Record]
    candidates: set[int]


def _chunks(batch: Sequence[Record]) -> Iterator[_Chunk]:
    """The batch in as few chunks as keep each one's candidates' ids distinct (one claim a
    statement each: a statement cannot claim an id twice); almost always one chunk."""
    records: list[Record] = []
    candidates: set[int] = set()
    ids: set[str] = set()
    for record in batch:
        if not record.duplicate and record.id in ids:
            yield _Chunk(records, candidates)
            records, candidates, ids = [], set(), set()
        records.append(record)
        if not record.duplicate:
            candidates.add(record.seq)
            ids.add(record.id)
    if records:
        yield _Chunk(records, candidates)


def _text(value: Any) -> str | None:
    """A text column's value: PostgreSQL's text holds no NUL, which a provider may send."""
    if value is None:
        return None
    text = str(value)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
