"""The journal: SQLite in WAL mode in the hub's data directory, the spine of the hub.

Every accepted callback's events are committed here before the provider is answered; the
forwarder then publishes them to the broker and records how far it got (``sinks.progress``).

Writes run on the event loop's own thread, between callbacks: requests hand their rows to the
journal and wait; once the loop has run every callback ready at that moment, it writes all the
waiting rows in one transaction and commits with ``synchronous=FULL`` (the WAL is synced to
disk) before any of those requests is answered. Durability costs one disk sync per batch, not
per request (group commit), and the loop is held for that sync (about 0.3 ms here): requests
arriving meanwhile form the next batch.

Why not a writer thread: it gave up the GIL in every SQLite call and had to wait for the loop to
give it back, up to the 5 ms switch interval each time; commits of a few events took
milliseconds. Checkpoints (copying the WAL into the database, a sync of its own) mostly run in a
thread with a connection of their own, which never holds up a commit. One cannot finish while
commits keep coming, though, and only a finished one lets the WAL start over: SQLite's own
checkpoint at the commit that passes 1000 pages finishes it, with little left to copy.

An event whose id is already in the journal, received within the deduplication window, is not
written again: it is a provider's retry (counted in ``counters.duplicates``).

Tables:
- ``events``: each event once, as its CloudEvents JSON with the columns needed to route it, in
  arrival order (``seq``). How far they were forwarded is the forwarder's own file
  (``sinks.progress``); ``forwarded_at`` is only read from journals of earlier hubs.
- ``quarantine``: requests that could not be parsed, kept whole for inspection and replay.
- ``counters``: totals that outlive the process (duplicates).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hub.errors import SinkUnavailable
from hub.models import Envelope, Event
from sinks import progress

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    provider     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    type         TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    time         REAL NOT NULL,
    received_at  REAL NOT NULL,
    body         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_id ON events (id, received_at);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS quarantine (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    provider     TEXT NOT NULL,
    callback     TEXT NOT NULL,
    method       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers      TEXT NOT NULL,
    query        BLOB NOT NULL,
    body         BLOB NOT NULL,
    replayed_at  REAL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('duplicates', 0);
"""
JOURNAL_FILE = "journal.sqlite3"
T = TypeVar("T")
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A request kept whole because it could not be parsed."""

    received_at: str
    provider: str
    callback: str
    method: str
    reason: str
    content_type: str
    headers: str
    """The request headers as a JSON object."""
    query: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A quarantined request as stored, with its number and whether it was replayed."""

    seq: int
    entry: QuarantineEntry
    replayed_at: float | None


@dataclass(frozen=True, slots=True)
class Appended:
    new: list[Event]
    duplicates: list[Event]


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as the journal holds it."""

    seq: int
    provider: str
    received_at: float
    envelope: Envelope

    def event(self) -> Event:
        return Event.from_json(self.envelope.body)


@dataclass(frozen=True, slots=True)
class Stats:
    events: int
    unforwarded: int
    oldest_unforwarded: float | None
    """Reception time (epoch seconds) of the oldest event not yet forwarded."""
    duplicates: int
    quarantined: int
    last_seq: int


Writer = Callable[[sqlite3.Connection], Any]
Row = tuple[str, str, str, str, str, float, float, bytes]
"""An event as the ``events`` table takes it (every column but ``seq``)."""
_COLUMNS = "id, provider, kind, type, routing_key, time, received_at, body"
_INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 120
"""Rows per statement: within SQLite's 999 bound parameters of old versions (8 a row, 1 an id)."""


@dataclass(slots=True)
class _Job:
    write: Writer | None
    """What the job does with the connection; None for an append: its ``rows``."""
    rows: list[Row]
    future: asyncio.Future[Any]


CHECKPOINT_INTERVAL = 0.2
"""Seconds between two checkpoints of the checkpointer thread (PASSIVE: they never wait for,
nor block, a commit)."""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Journal:
    """Durable local storage with group commit. Open with :meth:`open`, end with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        *,
        dedup_window: float = 7 * DAY,
        max_bytes: int | None = None,
        on_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.path = path
        self.dedup_window = dedup_window
        self.max_bytes = max_bytes
        self._on_commit = on_commit
        self._waiting: list[_Job] = []
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def open(cls, data_dir: Path, **kwargs: Any) -> Journal:
        data_dir.mkdir(parents=True, exist_ok=True)
        journal = cls(data_dir / JOURNAL_FILE, **kwargs)
        conn = journal._conn = connect(journal.path)
        conn.executescript(SCHEMA)
        if journal.max_bytes is not None:
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            conn.execute(f"PRAGMA max_page_count={max(journal.max_bytes // page_size, 1)}")
        journal._checkpointer = threading.Thread(
            target=journal._checkpoints, name="journal-checkpoints", daemon=True
        )
        journal._checkpointer.start()
        return journal

    # -- writing (on the event loop's thread) --------------------------------------------------

    async def append(self, events: Sequence[Event]) -> Appended:
        """Commits the events not already journaled within the deduplication window.

        Returns once they are on disk; raises :class:`SinkUnavailable` if they are not.
        """
        rows = [
            (
                e.id,
                e.data.provider.value,
                e.data.kind.value,
                e.type,
                e.routing_key,
                e.time.timestamp(),
                e.data.received_at.timestamp(),
                e.to_json(),
            )
            for e in events
        ]
        fresh: list[bool] = await self._submit(None, rows)
        return Appended(
            new=[e for e, f in zip(events, fresh, strict=True) if f],
            duplicates=[e for e, f in zip(events, fresh, strict=True) if not f],
        )

    async def quarantine(self, entry: QuarantineEntry) -> int:
        """Keeps a request that could not be parsed; returns its quarantine number."""

        def write(conn: sqlite3.Connection) -> int:
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

        number: int = await self._submit(write)
        return number

    async def mark_replayed(self, seq: int, at: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE quarantine SET replayed_at = ? WHERE seq = ?", (at, seq))

        await self._submit(write)

    async def prune(
        self, received_before: float, *, forwarded_up_to: int | None, chunk: int = 2000
    ) -> int:
        """Deletes events received before the given time; with a broker, only forwarded ones:
        those with ``seq`` up to the forwarder's cursor.

        A day of events may be millions of rows: they go ``chunk`` at a time, each chunk a
        commit of its own between callbacks' commits, so that none waits long for it."""
        up_to = forwarded_up_to if forwarded_up_to is not None else 2**62

        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                " WHERE received_at < ? AND seq <= ? ORDER BY seq LIMIT ?)",
                (received_before, up_to, chunk),
            )
            return cursor.rowcount

        deleted = 0
        while True:
            count: int = await self._submit(write)
            deleted += count
            if count < chunk:
                return deleted

    async def _submit(self, write: Writer | None, rows: list[Row] | None = None) -> Any:
        if self._conn is None:
            raise SinkUnavailable("journal is closed", reason="journal_closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._waiting:  # the first of a batch: commit once the ready callbacks have run
            future.get_loop().call_soon(self._flush)
        self._waiting.append(_Job(write, rows or [], future))
        return await future

    @property
    def ready(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        """Commits what waits (from the loop's thread), checkpoints, closes."""
        self._flush()
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join()
            self._checkpointer = None
        if self._conn is not None:
            with suppress(sqlite3.Error):  # the next opening checkpoints anyway
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        if self._conn is None:
            error = SinkUnavailable("journal is closed", reason="journal_closed")
            _settle([(job, None) for job in batch], error)
            return
        started = time.perf_counter()
        self._commit(self._conn, batch)
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started)

    def _checkpoints(self) -> None:
        """Copies committed WAL frames into the database now and then, off the loop."""
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(CHECKPOINT_INTERVAL):
                with suppress(sqlite3.Error):  # busy or full: the next round tries again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[Any] = []
        error: BaseException | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            appended = self._append(conn, [job.rows for job in batch if job.write is None])
            results = [
                job.write(conn) if job.write is not None else next(appended) for job in batch
            ]
            conn.execute("COMMIT")
        except Exception as exc:
            full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            reason = "journal_full" if full else "journal_unwritable"
            error = SinkUnavailable(f"journal write failed: {exc!r}", reason=reason)
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if len(batch) > 1:  # SQLite undid them all: one job that does not fit must not
                for job in batch:  # fail the others (a quarantined request among events)
                    self._commit(conn, [job])
                return
        _settle([(job, results[i] if results else None) for i, job in enumerate(batch)], error)

    def _append(self, conn: sqlite3.Connection, appends: list[list[Row]]) -> Iterator[list[bool]]:
        """Writes the rows of every append of the batch that are not duplicates; for each
        append, which of its rows were new.

        A few statements for the whole batch, not two a row: the loop is held while it
        writes."""
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
                fresh = last is None or last < row[6] - self.dedup_window
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


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _settle(settled: list[tuple[_Job, Any]], error: BaseException | None) -> None:
    for job, result in settled:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)


# -- reading (any thread, read-only connections) ------------------------------------------


def _reader(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True))


_STORED = "SELECT seq, provider, received_at, id, type, routing_key, time, body FROM events"


def _stored(row: tuple[Any, ...]) -> Stored:
    seq, provider, received_at, id_, type_, key, when, body = row
    envelope = Envelope(id_, type_, key, datetime.fromtimestamp(when, UTC), bytes(body))
    return Stored(seq, provider, received_at, envelope)


_PENDING = f"{_STORED} WHERE seq > ? ORDER BY seq LIMIT ?"


class PendingReader:
    """Events with ``seq`` above the forwarder's cursor, in arrival order, on one read-only
    connection kept open (the forwarder asks many times a second; one caller at a time, from
    any thread)."""

    def __init__(self, path: Path) -> None:
        uri = path.resolve().as_uri() + "?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)

    def read(self, after: int, limit: int) -> list[Stored]:
        return [_stored(r) for r in self._conn.execute(_PENDING, (after, limit)).fetchall()]

    def close(self) -> None:
        self._conn.close()


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
    with _reader(path) as conn:
        rows = conn.execute(
            f"{_STORED} WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?",
            (*params, limit),
        ).fetchall()
    return [_stored(r) for r in rows]


def last_seq(path: Path) -> int:
    """The ``seq`` of the last event journaled (0: none), without counting anything."""
    with _reader(path) as conn:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(last)


def stats(path: Path) -> Stats:
    """Counts over the whole journal (events after the forwarder's cursor are unforwarded)."""
    forwarded = progress.read(path.parent)
    cursor = forwarded.cursor if forwarded is not None else 0
    with _reader(path) as conn:
        events, last = conn.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        unforwarded, oldest = conn.execute(
            "SELECT COUNT(*), MIN(received_at) FROM events WHERE seq > ?", (cursor,)
        ).fetchone()
        (duplicates,) = conn.execute(
            "SELECT value FROM counters WHERE name = 'duplicates'"
        ).fetchone()
        (quarantined,) = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    return Stats(events, unforwarded, oldest, duplicates, quarantined, last)


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
    with _reader(path) as conn:
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
