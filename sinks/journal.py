"""The journal: SQLite in WAL mode in the hub's data directory, the spine of the hub.

Every accepted callback's events are committed here before the provider is answered; the
forwarder then publishes them to the broker and records how far it got (``sinks.progress``).

Writes run in one writer thread of their own: requests hand their rows to the journal and wait;
once the loop has run every callback ready at that moment, the waiting rows go to the writer,
which writes them in one transaction and commits with ``synchronous=FULL`` (the WAL is synced
to disk) before any of those requests is answered. Durability costs one disk sync per batch, not
per request (group commit); requests arriving while a commit is under way form the next batch.
The event loop never waits for the disk: a sync takes 0.3 ms here, but up to hundreds of ms on
a shared disk, and forever on one that stalls (``fsfreeze``), and ``/health/live`` must answer
meanwhile. A request waits for its commit at most ``commit_timeout`` seconds, then is told to
retry (if the commit lands later, the provider's retry is a duplicate); a commit under way for
longer makes the journal not ready, and what comes meanwhile is refused at once. (The writer
once ran on the loop's own thread: a thread gives up the GIL in every SQLite call and waits for
it back, which costs speed, not durability.)
Checkpoints (copying the WAL into the database, a sync of its own) mostly run in a thread with a
connection of their own, which never holds up a commit; SQLite's own checkpoint at the commit
that passes ``wal_autocheckpoint`` pages finishes one when commits keep coming.

What can go wrong on disk is checked where it is cheap, once a commit, in the writer:

- *The file deleted or replaced* (``rm journal.sqlite3*``): SQLite would go on writing to the
  open, unlinked files, and every acknowledgement would be lost at the next start. After each
  commit the writer compares the device and inode of the database, its WAL and its index with
  those it opened; if one differs, that commit is not acknowledged, nothing is from then on
  (``journal_gone``, until a restart), and what the open file holds is copied beside it
  (``journal.sqlite3.salvaged-<time>``) for the operator to put back.
- *Full or unwritable* (``journal_full``, ``journal_unwritable``): the batch is refused; the
  journal is not ready, and tries a small commit every second until one passes (once the file
  system has ``HEADROOM`` free bytes, and a capped journal a few pages).
- *The cap* (``max_bytes``) holds for everything on disk: a quarter of it (at most 8 MiB) for
  the WAL, checked before each commit against the pages the batch may write; 32 KiB for the
  WAL's index; the rest for the database (``max_page_count``).

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
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hub.errors import SinkUnavailable
from hub.models import Envelope, Event
from sinks import progress

log = logging.getLogger(__name__)

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
    frames: int = 2
    """At most how many pages the job adds to a commit (the WAL's share of a capped journal)."""


Outcome = tuple[Any, "SinkUnavailable | None"]
"""What a job got: its result, or why it was not committed."""

CHECKPOINT_INTERVAL = 0.2
"""Seconds between two checkpoints of the checkpointer thread (PASSIVE: they never wait for,
nor block, a commit)."""
COMMIT_TIMEOUT = 10.0
"""Seconds a request waits for its commit before it is told to retry
(``HUB_JOURNAL_COMMIT_TIMEOUT``); a commit under way for longer makes the journal not ready."""
PROBE_INTERVAL = 1.0
"""Seconds between two tries of a journal that could not take writes (full, unwritable)."""
HEADROOM = 1 << 20
"""Free bytes its file system must have again before a journal that could not write tries."""
FILES = ("", "-wal", "-shm")
"""Suffixes of the files SQLite keeps for the journal: the database, its WAL, the WAL's index."""
_SHM_CHUNK = 32768
"""The WAL index grows by this much for every 4096 frames of WAL."""
_FRAME_HEADER = 24
_COMPACT_AT = 1024
"""Jobs waiting behind a commit past which those that timed out are dropped from the list."""
_CHECKPOINT_TRIES = 100
"""Tries, 10 ms apart, of a checkpoint that empties a capped journal's WAL before a commit."""
_COMMIT_FRAMES = 8
"""Pages any commit may write besides its jobs' own: B-tree roots and parents, the sequence."""

FULL, UNWRITABLE, GONE, STALLED = (
    "journal_full",
    "journal_unwritable",
    "journal_gone",
    "journal_stalled",
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Journal:
    """Durable local storage with group commit. Open with :meth:`open`, end with :meth:`close`.

    :attr:`trouble` says why it cannot take writes (``journal_full``, ``journal_unwritable``: tried
    again every second, and clears by itself; ``journal_gone``: its file was deleted or replaced,
    until a restart); :attr:`ready` is false then, and while a commit outlasts the timeout."""

    def __init__(
        self,
        path: Path,
        *,
        dedup_window: float = 7 * DAY,
        max_bytes: int | None = None,
        commit_timeout: float = COMMIT_TIMEOUT,
        on_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.path = path
        self.dedup_window = dedup_window
        self.max_bytes = max_bytes
        self.commit_timeout = commit_timeout
        self._on_commit = on_commit
        self._waiting: list[_Job] = []
        self._compact_at = _COMPACT_AT
        self._committing: float | None = None
        """When the commit under way in the writer thread began (monotonic time), if one is."""
        self._conn: sqlite3.Connection | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="journal-writer")
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self._probing: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poked = False
        self._files: dict[str, tuple[int, int] | None] = {}
        self._page_size = 4096
        self._wal_budget: int | None = None
        """With ``max_bytes``: the most bytes the WAL may take on disk."""
        self.trouble: str | None = None
        """Why the journal cannot take writes now (a reason), or None."""

    @classmethod
    def open(cls, data_dir: Path, **kwargs: Any) -> Journal:
        data_dir.mkdir(parents=True, exist_ok=True)
        journal = cls(data_dir / JOURNAL_FILE, **kwargs)
        conn = journal._conn = connect(journal.path)
        conn.executescript(SCHEMA)
        (journal._page_size,) = conn.execute("PRAGMA page_size").fetchone()
        if journal.max_bytes is not None:
            journal._cap(conn, journal.max_bytes)
        journal._files = journal._identities()
        with suppress(RuntimeError):  # opened outside a loop: no writes before one runs
            journal._loop = asyncio.get_running_loop()
        journal._checkpointer = threading.Thread(
            target=journal._checkpoints, name="journal-checkpoints", daemon=True
        )
        journal._checkpointer.start()
        return journal

    def _cap(self, conn: sqlite3.Connection, max_bytes: int) -> None:
        """Shares ``max_bytes`` out: a quarter (at most 8 MiB) for the WAL, checked before each
        commit; its index; the rest for the database, SQLite's ``max_page_count``."""
        frame = self._page_size + _FRAME_HEADER
        self._wal_budget = wal = min(max_bytes // 4, 8 << 20)
        shm = _SHM_CHUNK * (1 + wal // frame // 4096)
        pages = max((max_bytes - wal - shm) // self._page_size, 1)
        conn.execute(f"PRAGMA max_page_count={pages}")
        conn.execute(f"PRAGMA journal_size_limit={wal}")
        conn.execute(f"PRAGMA wal_autocheckpoint={max(wal // frame // 2, 1)}")

    # -- writing (the loop hands batches to the writer thread) ----------------------------------

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
        size = sum(len(row[7]) for row in rows)
        fresh: list[bool] = await self._submit(None, rows, self._pages(size) + 2 * len(rows))
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

        size = len(entry.headers) + len(entry.query) + len(entry.body)
        number: int = await self._submit(write, frames=self._pages(size) + 2)
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
        commit of its own between callbacks' commits, so that none waits long for it (fewer
        at a time in a capped journal, whose WAL must hold a chunk's pages: 3 a row at most)."""
        up_to = forwarded_up_to if forwarded_up_to is not None else 2**62
        if self._wal_budget is not None:
            frames = self._wal_budget // (self._page_size + _FRAME_HEADER)
            chunk = max(1, min(chunk, (frames - _COMMIT_FRAMES) // 3))

        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                " WHERE received_at < ? AND seq <= ? ORDER BY seq LIMIT ?)",
                (received_before, up_to, chunk),
            )
            return cursor.rowcount

        deleted = 0
        while True:
            count: int = await self._submit(write, frames=3 * chunk)
            deleted += count
            if count < chunk:
                return deleted

    def _pages(self, size: int) -> int:
        """Pages that ``size`` bytes of rows may take, twice over (B-tree pages split)."""
        return 2 * (size // self._page_size + 1)

    async def _submit(
        self, write: Writer | None, rows: list[Row] | None = None, frames: int = 2
    ) -> Any:
        if self._conn is None:
            raise SinkUnavailable("journal is closed", reason="journal_closed")
        if self.trouble == GONE:
            raise SinkUnavailable("the journal's file is gone or replaced", reason=GONE)
        if self.stalled:  # the disk stalls: waiting would only pile requests up
            raise SinkUnavailable("a commit outlasts its timeout", reason=STALLED)
        future = self._enqueue(
            _Job(write, rows or [], asyncio.get_running_loop().create_future(), frames)
        )
        try:
            async with asyncio.timeout(self.commit_timeout):
                return await future
        except TimeoutError:
            raise SinkUnavailable(
                f"no commit within {self.commit_timeout} s", reason=STALLED
            ) from None

    def _enqueue(self, job: _Job) -> asyncio.Future[Any]:
        if not self._waiting and self._committing is None:
            # the first of a batch: commit once the ready callbacks have run
            job.future.get_loop().call_soon(self._flush)
        elif len(self._waiting) >= self._compact_at:  # a long commit: let timed-out jobs go
            self._waiting = [waiting for waiting in self._waiting if not waiting.future.done()]
            self._compact_at = max(_COMPACT_AT, 2 * len(self._waiting))
        self._waiting.append(job)
        return job.future

    @property
    def ready(self) -> bool:
        """The journal takes writes: open, no trouble, no commit outlasting the timeout, its
        files where it opened them (from any thread: health checks and metrics ask, not the
        callbacks' path). Files found moved while no commit came: an empty commit is asked of
        the writer, for it to act on it (refuse, log, copy)."""
        if self._conn is None or self.trouble is not None or self.stalled:
            return False
        if not self._moved():
            return True
        if self._loop is not None and not self._poked:
            self._poked = True
            self._loop.call_soon_threadsafe(self._poke)
        return False

    def _moved(self) -> bool:
        return any(
            known is not None and self._identity(suffix) != known
            for suffix, known in list(self._files.items())
        )

    def _poke(self) -> None:
        if self._conn is not None and self.trouble != GONE:
            future = self._enqueue(_Job(_nothing, [], asyncio.get_running_loop().create_future()))
            future.add_done_callback(lambda f: f.cancelled() or f.exception())

    @property
    def stalled(self) -> bool:
        started = self._committing
        return started is not None and time.monotonic() - started > self.commit_timeout

    def close(self) -> None:
        """Waits for the commit under way, commits what waits (from the loop's thread, which it
        holds meanwhile), checkpoints, closes."""
        if self._probing is not None:
            self._probing.cancel()
            self._probing = None
        self._writer.shutdown(wait=True)
        batch = [job for job in self._waiting if not job.future.done()]
        self._waiting = []
        if batch and self._conn is not None:
            outcomes, _ = self._write(batch)
            _settle(batch, outcomes)
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join()
            self._checkpointer = None
        if self._conn is not None:
            with suppress(sqlite3.Error):  # the next opening checkpoints anyway
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None
        batch, self._waiting = self._waiting, []
        _settle(batch, _failed(batch, "journal is closed", "journal_closed"))

    def _flush(self) -> None:
        """On the loop: hands what waits to the writer thread, unless a commit is under way
        (what waits then goes as the next batch, once it is done)."""
        if self._committing is not None:
            return
        batch = [job for job in self._waiting if not job.future.done()]  # not timed out
        self._waiting = []
        if not batch:
            return
        if self._conn is None:
            _settle(batch, _failed(batch, "journal is closed", "journal_closed"))
            return
        self._committing = time.monotonic()
        loop = self._loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._writer, self._write, batch)
        done.add_done_callback(lambda f: self._committed(batch, f))

    def _committed(
        self, batch: list[_Job], done: asyncio.Future[tuple[list[Outcome], float]]
    ) -> None:
        """On the loop, once the writer thread is through with a batch."""
        self._committing = None
        if done.cancelled():  # the executor was shut down (closing)
            _settle(batch, _failed(batch, "journal is closed", "journal_closed"))
            return
        if (exc := done.exception()) is not None:
            log.error("journal writer failed: %r", exc)
            _settle(batch, _failed(batch, repr(exc), UNWRITABLE))
        else:
            outcomes, elapsed = done.result()
            _settle(batch, outcomes)
            if self._on_commit is not None:
                self._on_commit(elapsed)
        if self.trouble in (FULL, UNWRITABLE) and self._probing is None:
            self._probing = done.get_loop().call_later(PROBE_INTERVAL, self._probe)
        if self._waiting:
            self._flush()

    def _probe(self) -> None:
        """Tries a journal that could not write: a small commit, if there is room again."""
        self._probing = None
        if self.trouble not in (FULL, UNWRITABLE) or self._conn is None:
            return
        future = self._enqueue(_Job(self._headroom, [], asyncio.get_running_loop().create_future()))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _headroom(self, conn: sqlite3.Connection) -> None:
        """The probe's write: a page written, if the file system has ``HEADROOM`` bytes free
        and a capped journal room for a few pages more."""
        fs = os.statvfs(self.path.parent)
        if fs.f_bavail * fs.f_frsize < HEADROOM:
            raise SinkUnavailable("the journal's file system is still full", reason=FULL)
        if self.max_bytes is not None:
            (count,) = conn.execute("PRAGMA page_count").fetchone()
            (free,) = conn.execute("PRAGMA freelist_count").fetchone()
            (most,) = conn.execute("PRAGMA max_page_count").fetchone()
            if most - count + free < 4 * _COMMIT_FRAMES:
                raise SinkUnavailable("the journal is still at its cap", reason=FULL)
        conn.execute("UPDATE counters SET value = value WHERE name = 'duplicates'")

    # -- in the writer thread -------------------------------------------------------------------

    def _write(self, batch: list[_Job]) -> tuple[list[Outcome], float]:
        """Commits the batch; checks afterwards that the journal's files are still the ones it
        wrote to, so that nothing is acknowledged that went to a deleted file."""
        started = time.perf_counter()
        conn = self._conn
        if conn is None or self.trouble == GONE:
            reason = "journal_closed" if conn is None else GONE
            return _failed(batch, "journal cannot write", reason), 0.0
        outcomes = self._commit(conn, batch)
        lost = self._lost()
        if lost is not None:
            self._gone(conn, lost)
            outcomes = _failed(batch, f"journal file {lost} gone or replaced", GONE)
        else:
            failed = next((error for _, error in outcomes if error is not None), None)
            trouble = failed.reason if failed is not None else None
            if trouble != self.trouble:
                if trouble is None:
                    log.warning("journal takes writes again")
                else:
                    log.error(
                        "journal cannot take writes (%s): callbacks are told to retry, not ready",
                        trouble,
                    )
            self.trouble = trouble
        elapsed = time.perf_counter() - started
        if elapsed > self.commit_timeout:
            log.warning("journal commit took %.1f s (the disk stalled)", elapsed)
        return outcomes, elapsed

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        try:
            self._make_room(conn, batch)
            conn.execute("BEGIN IMMEDIATE")
            appended = self._append(conn, [job.rows for job in batch if job.write is None])
            results = [
                job.write(conn) if job.write is not None else next(appended) for job in batch
            ]
            conn.execute("COMMIT")
        except Exception as exc:
            if isinstance(exc, SinkUnavailable):
                error = exc
            else:
                full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                reason = FULL if full else UNWRITABLE
                error = SinkUnavailable(f"journal write failed: {exc!r}", reason=reason)
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if len(batch) > 1:  # SQLite undid them all: one job that does not fit must not
                # fail the others (a quarantined request among events)
                return [outcome for job in batch for outcome in self._commit(conn, [job])]
            return [(None, error)]
        return [(result, None) for result in results]

    def _make_room(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """In a capped journal, the WAL must keep within its budget once the batch is in it:
        if it would not, a checkpoint empties it first; if it cannot, the batch is refused."""
        if self._wal_budget is None:
            return
        frames = sum(job.frames for job in batch) + _COMMIT_FRAMES
        need = frames * (self._page_size + _FRAME_HEADER)
        if self._size("-wal") + need <= self._wal_budget:
            return
        for _ in range(_CHECKPOINT_TRIES):  # busy at once while the checkpointer runs one
            with suppress(sqlite3.Error):
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    break
            time.sleep(0.01)
        if self._size("-wal") + need > self._wal_budget:
            raise SinkUnavailable("the journal's WAL is at its share of the cap", reason=FULL)

    def _size(self, suffix: str) -> int:
        try:
            return os.stat(f"{self.path}{suffix}").st_size
        except FileNotFoundError:
            return 0

    def _identity(self, suffix: str) -> tuple[int, int] | None:
        try:
            st = os.stat(f"{self.path}{suffix}")
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _identities(self) -> dict[str, tuple[int, int] | None]:
        return {suffix: self._identity(suffix) for suffix in FILES}

    def _lost(self) -> str | None:
        """The name of a journal file that is not the one open any more (deleted, replaced), if
        one is. A stat a file, once a commit: the commit's sync costs far more."""
        for suffix, now in self._identities().items():
            known = self._files.get(suffix)
            if known is None:
                self._files[suffix] = now  # created since the journal was opened
            elif now != known:
                return f"{self.path.name}{suffix}"
        return None

    def _gone(self, conn: sqlite3.Connection, lost: str) -> None:
        """The journal's file was deleted or replaced: no more writes, and a copy of what the
        open file still holds (every event acknowledged) beside it, for the operator."""
        self.trouble = GONE
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        salvage = self.path.with_name(f"{self.path.name}.salvaged-{stamp}")
        try:
            with closing(sqlite3.connect(salvage)) as copy:
                conn.backup(copy)
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "journal file %s gone or replaced: the journal takes no more writes, callbacks"
                " are told to retry, not ready; its copy failed: %r",
                lost,
                exc,
            )
            return
        log.error(
            "journal file %s gone or replaced: the journal takes no more writes, callbacks are"
            " told to retry, not ready; every event it kept is in %s: stop the hub, move that"
            " file to %s, start it again",
            lost,
            salvage.name,
            self.path.name,
        )

    def _checkpoints(self) -> None:
        """Copies committed WAL frames into the database now and then, off the writer."""
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(CHECKPOINT_INTERVAL):
                with suppress(sqlite3.Error):  # busy or full: the next round tries again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

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


def _nothing(conn: sqlite3.Connection) -> None:
    """An empty commit's write."""


def _failed(jobs: Sequence[_Job], message: str, reason: str) -> list[Outcome]:
    return [(None, SinkUnavailable(message, reason=reason)) for _ in jobs]


def _settle(jobs: list[_Job], outcomes: list[Outcome]) -> None:
    for job, (result, error) in zip(jobs, outcomes, strict=True):
        if job.future.done():  # timed out: the request has been answered already
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
