"""The journal's writer: group commit in a thread of its own, and what it does when the disk
fails.

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
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import SinkUnavailable
from core.models import Event
from sinks.journal import events as events_table
from sinks.journal import quarantine as quarantine_table
from sinks.journal.files import Cap, Files
from sinks.journal.schema import (
    DAY,
    JOURNAL_FILE,
    SCHEMA,
    Appended,
    QuarantineEntry,
    Row,
    Writer,
    connect,
)

log = logging.getLogger(__name__)


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
        self.files = Files(path)
        self._page_size = 4096
        self._cap: Cap | None = None
        """With ``max_bytes``: its shares (the WAL's budget, the database's pages)."""
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
            journal._cap = Cap.of(journal.max_bytes, journal._page_size)
            journal._cap.apply(conn)
        journal.files.remember()
        with suppress(RuntimeError):  # opened outside a loop: no writes before one runs
            journal._loop = asyncio.get_running_loop()
        journal._checkpointer = threading.Thread(
            target=journal._checkpoints, name="journal-checkpoints", daemon=True
        )
        journal._checkpointer.start()
        return journal

    # -- writing (the loop hands batches to the writer thread) ----------------------------------

    async def append(self, events: Sequence[Event]) -> Appended:
        """Commits the events not already journaled within the deduplication window.

        Returns once they are on disk; raises :class:`SinkUnavailable` if they are not.
        """
        rows = [events_table.row_of(e) for e in events]
        size = sum(len(row[7]) for row in rows)
        fresh: list[bool] = await self._submit(None, rows, self._pages(size) + 2 * len(rows))
        return Appended(
            new=[e for e, f in zip(events, fresh, strict=True) if f],
            duplicates=[e for e, f in zip(events, fresh, strict=True) if not f],
        )

    async def quarantine(self, entry: QuarantineEntry) -> int:
        """Keeps a request that could not be parsed; returns its quarantine number."""

        def write(conn: sqlite3.Connection) -> int:
            return quarantine_table.insert(conn, entry)

        size = quarantine_table.size(entry)
        number: int = await self._submit(write, frames=self._pages(size) + 2)
        return number

    async def mark_replayed(self, seq: int, at: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            quarantine_table.mark_replayed(conn, seq, at)

        await self._submit(write)

    async def drop_quarantined(self, numbers: Sequence[int]) -> list[int]:
        """Deletes quarantined requests by number; the numbers of those that were there."""

        def write(conn: sqlite3.Connection) -> list[int]:
            return quarantine_table.delete(conn, numbers)

        found: list[int] = await self._submit(write, frames=3 * len(numbers) + 2)
        return found

    async def prune_quarantine(self, replayed_before: float, *, chunk: int = 100) -> int:
        """Deletes the quarantined requests replayed before the given time, ``chunk`` a commit."""

        def write(conn: sqlite3.Connection) -> int:
            return quarantine_table.delete_replayed_before(conn, replayed_before, chunk)

        deleted = 0
        while (count := await self._submit(write, frames=3 * chunk)) == chunk:
            deleted += count
        return deleted + int(count)

    async def prune(
        self, received_before: float, *, forwarded_up_to: int | None, chunk: int = 2000
    ) -> int:
        """Deletes events received before the given time; with a broker, only forwarded ones:
        those with ``seq`` up to the forwarder's cursor.

        A day of events may be millions of rows: they go ``chunk`` at a time, each chunk a
        commit of its own between callbacks' commits, so that none waits long for it (fewer
        at a time in a capped journal, whose WAL must hold a chunk's pages: 3 a row at most)."""
        up_to = forwarded_up_to if forwarded_up_to is not None else 2**62
        if self._cap is not None:
            chunk = max(1, min(chunk, (self._cap.wal_frames - _COMMIT_FRAMES) // 3))

        def write(conn: sqlite3.Connection) -> int:
            return events_table.delete_received_before(conn, received_before, up_to, chunk)

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
        if not self.files.moved():
            return True
        if self._loop is not None and not self._poked:
            self._poked = True
            self._loop.call_soon_threadsafe(self._poke)
        return False

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
        if not self.files.has_headroom():
            raise SinkUnavailable("the journal's file system is still full", reason=FULL)
        if self._cap is not None and Cap.pages_left(conn) < 4 * _COMMIT_FRAMES:
            raise SinkUnavailable("the journal is still at its cap", reason=FULL)
        events_table.touch(conn)

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
        lost = self.files.lost()
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
            appends = [job.rows for job in batch if job.write is None]
            appended = events_table.append(conn, appends, self.dedup_window)
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
        if self._cap is None:
            return
        frames = sum(job.frames for job in batch) + _COMMIT_FRAMES
        if self._cap.fits(self.files.size("-wal"), frames):
            return
        for _ in range(_CHECKPOINT_TRIES):  # busy at once while the checkpointer runs one
            with suppress(sqlite3.Error):
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    break
            time.sleep(0.01)
        if not self._cap.fits(self.files.size("-wal"), frames):
            raise SinkUnavailable("the journal's WAL is at its share of the cap", reason=FULL)

    def _gone(self, conn: sqlite3.Connection, lost: str) -> None:
        """The journal's file was deleted or replaced: no more writes, and a copy of what the
        open file still holds (every event acknowledged) beside it, for the operator."""
        self.trouble = GONE
        try:
            salvage = self.files.salvage(conn)
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
