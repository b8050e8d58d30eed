"""The local journal: SQLite in WAL mode, in the hub's data directory.

One writer thread owns the database. Requests hand it their rows and wait; the thread takes every
row waiting at that moment, writes them in one transaction and commits with ``synchronous=FULL``
(the WAL is synced to disk) before any of those requests is answered. Durability therefore costs
one disk sync per batch, not per request (group commit).

Tables:
- ``events``: every event made safe here, as its CloudEvents JSON, in arrival order (``seq``).
  ``forwarded_at`` is for the broker forwarder.
- ``quarantine``: requests that could not be parsed, kept whole for inspection and replay.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import SinkUnavailable
from hub.models import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    provider     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    time         TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    body         BLOB NOT NULL,
    forwarded_at TEXT
);
CREATE INDEX IF NOT EXISTS events_id ON events (id);
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
    body         BLOB NOT NULL
);
"""
JOURNAL_FILE = "journal.sqlite3"


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
class StoredEvent:
    seq: int
    body: bytes

    def event(self) -> Event:
        return Event.from_json(self.body)


Writer = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Job:
    write: Writer
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Journal:
    """Durable local storage with group commit. Open with :meth:`open`, end with :meth:`close`."""

    def __init__(self, path: Path, *, max_batch: int = 1024) -> None:
        self.path = path
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def open(cls, data_dir: Path, **kwargs: Any) -> Journal:
        data_dir.mkdir(parents=True, exist_ok=True)
        journal = cls(data_dir / JOURNAL_FILE, **kwargs)
        journal._conn = connect(journal.path)
        journal._conn.executescript(SCHEMA)
        journal._thread = threading.Thread(target=journal._run, name="journal-writer", daemon=True)
        journal._thread.start()
        return journal

    async def append(self, events: Sequence[Event]) -> None:
        """Returns once ``events`` are on disk; raises :class:`SinkUnavailable` if they are not."""
        rows = [
            (
                e.id,
                e.data.provider.value,
                e.data.kind.value,
                e.routing_key,
                e.time.isoformat(),
                e.data.received_at.isoformat(),
                e.to_json(),
            )
            for e in events
        ]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO events (id, provider, kind, routing_key, time, received_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

        await self._submit(write)

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

        result: int = await self._submit(write)
        return result

    async def _submit(self, write: Writer) -> Any:
        if self._thread is None or not self._thread.is_alive():
            raise SinkUnavailable("journal is closed", reason="journal_closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put(_Job(write, future, loop))
        return await future

    @property
    def ready(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Commits what is queued, then stops the writer thread."""
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self) -> None:
        assert self._conn is not None
        conn = self._conn
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                assert isinstance(job, _Job)
                batch.append(job)
            self._commit(conn, batch)

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[Any] = []
        error: BaseException | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [job.write(conn) for job in batch]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            error = SinkUnavailable(f"journal write failed: {exc}", reason="journal_unwritable")
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any]]] = {}
        for i, job in enumerate(batch):
            by_loop.setdefault(job.loop, []).append((job, results[i] if results else None))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle, settled, error)


def _settle(settled: list[tuple[_Job, Any]], error: BaseException | None) -> None:
    for job, result in settled:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)


def read_events(path: Path, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
    """Events with ``seq`` greater than ``after``, oldest first, from a read-only connection."""
    with _reader(path) as conn:
        rows = conn.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
    return [StoredEvent(seq, bytes(body)) for seq, body in rows]


def last_seq(path: Path) -> int:
    with _reader(path) as conn:
        (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(seq)


def _reader(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True))


def iter_events(path: Path, after: int = 0) -> Iterator[StoredEvent]:
    """Every event after ``after``, in pages."""
    while batch := read_events(path, after):
        yield from batch
        after = batch[-1].seq


class JournalSink:
    """The embedded default sink: events are safe once committed to the journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def publish(self, events: Sequence[Event]) -> None:
        await self.journal.append(events)

    async def close(self) -> None:
        """The journal belongs to the app, which closes it."""

    @property
    def ready(self) -> bool:
        return self.journal.ready
