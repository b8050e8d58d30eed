"""The journal's writer, on the loop's side: group commit in a thread of its own, the timeouts
and readiness that keep callbacks from waiting on a disk that fails.

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
Checkpoints run in a thread of their own (``sinks.journal.checkpoints``); what the writer thread
does with a batch, and what it finds wrong on disk (files gone or replaced, full, unwritable, the
cap), is ``sinks.journal.commit``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from core.errors import SinkUnavailable
from core.models import Event
from sinks.journal import events as events_table
from sinks.journal import quarantine as quarantine_table
from sinks.journal.checkpoints import Checkpointer
from sinks.journal.commit import (
    COMMIT_FRAMES,
    FULL,
    GONE,
    STALLED,
    UNWRITABLE,
    Committer,
    Job,
    Outcome,
    failed,
    settle,
)
from sinks.journal.files import Cap, Files
from sinks.journal.schema import (
    JOURNAL_FILE,
    SCHEMA,
    QuarantineEntry,
    Row,
    Writer,
    connect,
)
from sinks.journal.thread import WriterThread

log = logging.getLogger(__name__)


COMMIT_TIMEOUT = 10.0
"""Seconds a request waits for its commit before it is told to retry
(``HUB_JOURNAL_COMMIT_TIMEOUT``); a commit under way for longer makes the journal not ready."""
PROBE_INTERVAL = 1.0
"""Seconds between two tries of a journal that could not take writes (full, unwritable)."""
_COMPACT_AT = 1024
"""Jobs waiting behind a commit past which those that timed out are dropped from the list."""


class Journal:
    """Durable local storage with group commit. Open with :meth:`open`, end with :meth:`close`.

    :attr:`trouble` says why it cannot take writes (``journal_full``, ``journal_unwritable``: tried
    again every second, and clears by itself; ``journal_gone``: its file was deleted or replaced,
    until a restart); :attr:`ready` is false then, and while a commit outlasts the timeout.

    ``max_bytes`` caps its files on disk together with other files it never opens:
    ``also_counted`` says how many bytes they take (asked in the writer thread, before each
    commit and each probe)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int | None = None,
        commit_timeout: float = COMMIT_TIMEOUT,
        on_commit: Callable[[float], None] | None = None,
        also_counted: Callable[[], int] | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.commit_timeout = commit_timeout
        self._on_commit = on_commit
        self._waiting: list[Job] = []
        self._compact_at = _COMPACT_AT
        self._timed: deque[Job] = deque()
        """Requests waiting for a commit, oldest first (their deadlines in the same order)."""
        self._timer: asyncio.TimerHandle | None = None
        """The one timer of the oldest deadline (one per journal, not one per request)."""
        self._committing: float | None = None
        """When the commit under way in the writer thread began (monotonic time), if one is."""
        self._conn: sqlite3.Connection | None = None
        self._writer = WriterThread("journal-writer")
        self._checkpointer = Checkpointer(path)
        self._probing: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poked = False
        self.files = Files(path)
        self._page_size = 4096
        self._commits = Committer(
            path, self.files, commit_timeout=commit_timeout, also_counted=also_counted
        )
        """The writer thread's side: commits, the cap, the trouble it finds."""

    @property
    def trouble(self) -> str | None:
        """Why the journal cannot take writes now (a reason), or None."""
        return self._commits.trouble

    @classmethod
    def open(cls, data_dir: Path, **kwargs: Any) -> Journal:
        data_dir.mkdir(parents=True, exist_ok=True)
        journal = cls(data_dir / JOURNAL_FILE, **kwargs)
        conn = journal._conn = connect(journal.path)
        conn.executescript(SCHEMA)
        (journal._page_size,) = conn.execute("PRAGMA page_size").fetchone()
        if journal.max_bytes is not None:
            cap = journal._commits.cap = Cap.of(journal.max_bytes, journal._page_size)
            cap.apply(conn)
        journal.files.remember()
        with suppress(RuntimeError):  # opened outside a loop: no writes before one runs
            journal._loop = asyncio.get_running_loop()
        journal._checkpointer.start()
        return journal

    # -- writing (the loop hands batches to the writer thread) ----------------------------------

    def append(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Commits the events (a provider's retry too: the pipeline worker recognizes it).

        The future is done once they are on disk; it raises :class:`SinkUnavailable` if they
        are not (or this call does, when the journal cannot take them at all). A future, not a
        coroutine: the callbacks' path awaits it without a frame of its own in between.
        """
        rows = [events_table.row_of(e) for e in events]
        size = sum(len(row[7]) for row in rows)
        return self._submit(None, rows, self._pages(size) + len(rows))

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
        """Deletes the quarantined requests replayed before the given time, ``chunk`` a commit
        (fewer in a capped journal, whose WAL must hold a chunk's pages, as for :meth:`prune`:
        else each pruning, at start and every hour, found the journal full for a second)."""
        chunk = self._chunk(chunk)

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
        chunk = self._chunk(chunk)

        def write(conn: sqlite3.Connection) -> int:
            return events_table.delete_received_before(conn, received_before, up_to, chunk)

        deleted = 0
        while True:
            count: int = await self._submit(write, frames=3 * chunk)
            deleted += count
            if count < chunk:
                return deleted

    def _chunk(self, chunk: int) -> int:
        """Rows a pruning deletes a commit: within a capped journal's WAL (3 pages a row)."""
        if (cap := self._commits.cap) is not None:
            return max(1, min(chunk, (cap.wal_frames - COMMIT_FRAMES) // 3))
        return chunk

    def _pages(self, size: int) -> int:
        """Pages that ``size`` bytes of rows may take, twice over (B-tree pages split)."""
        return 2 * (size // self._page_size + 1)

    def _submit(
        self, write: Writer | None, rows: list[Row] | None = None, frames: int = 2
    ) -> asyncio.Future[Any]:
        """The job's future, once it waits for a commit (raises at once when none can take it)."""
        if self._conn is None:
            raise SinkUnavailable("journal is closed", reason="journal_closed")
        if self._commits.trouble == GONE:  # (the properties, read without their frames)
            raise SinkUnavailable("the journal's file is gone or replaced", reason=GONE)
        if self._committing is not None and self.stalled:  # waiting would only pile requests up
            raise SinkUnavailable("a commit outlasts its timeout", reason=STALLED)
        loop = asyncio.get_running_loop()
        job = Job(
            write, rows or [], loop.create_future(), frames, loop.time() + self.commit_timeout
        )
        self._timed.append(job)
        if self._timer is None:
            self._timer = loop.call_at(job.deadline, self._expire)
        return self._enqueue(job)

    def _expire(self) -> None:
        """On the loop, at the oldest deadline: the requests whose commit has not come within
        ``commit_timeout`` are told to retry (if it lands later, the provider's retry is a
        duplicate); then the timer moves to the next deadline."""
        self._timer = None
        timed = self._timed
        now = timed[0].future.get_loop().time() if timed else 0.0
        while timed and (timed[0].future.done() or timed[0].deadline <= now):
            job = timed.popleft()
            if not job.future.done():
                job.future.set_exception(
                    SinkUnavailable(f"no commit within {self.commit_timeout} s", reason=STALLED)
                )
        if timed:
            loop = timed[0].future.get_loop()
            self._timer = loop.call_at(timed[0].deadline, self._expire)

    def _forget_settled(self) -> None:
        """Drops the requests answered from the front of the deadlines (batches commit in
        order, so theirs are there), so that none is kept for ``commit_timeout`` after."""
        timed = self._timed
        while timed and timed[0].future.done():
            timed.popleft()

    def _enqueue(self, job: Job) -> asyncio.Future[Any]:
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
            future = self._enqueue(Job(_nothing, [], asyncio.get_running_loop().create_future()))
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._writer.shutdown()
        batch = [job for job in self._waiting if not job.future.done()]
        self._waiting = []
        if batch and self._conn is not None:
            outcomes, _ = self._write(batch)
            lost = self.files.lost() if self.trouble != GONE else None
            if lost is not None:
                self._commits.gone(self._conn, lost)
                outcomes = failed(batch, f"journal file {lost} gone or replaced", GONE)
            settle(batch, outcomes)
        self._checkpointer.stop()
        if self._conn is not None:
            with suppress(sqlite3.Error):  # the next opening checkpoints anyway
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None
        batch, self._waiting = self._waiting, []
        settle(batch, failed(batch, "journal is closed", "journal_closed"))

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
            settle(batch, failed(batch, "journal is closed", "journal_closed"))
            return
        self._committing = time.monotonic()
        self._loop = asyncio.get_running_loop()
        done = self._writer.run(self._write, batch)
        done.add_done_callback(lambda f: self._committed(batch, f))

    def _committed(
        self, batch: list[Job], done: asyncio.Future[tuple[list[Outcome], float]]
    ) -> None:
        """On the loop, once the writer thread is through with a batch."""
        self._committing = None
        if done.cancelled():  # (nobody cancels a commit today: its batch is settled anyway)
            settle(batch, failed(batch, "journal is closed", "journal_closed"))
            return
        if (exc := done.exception()) is not None:
            log.error("journal writer failed: %r", exc)
            settle(batch, failed(batch, repr(exc), UNWRITABLE))
        else:
            outcomes, elapsed = done.result()
            settle(batch, self._checked(batch, outcomes))
            if self._on_commit is not None:
                self._on_commit(elapsed)
        self._forget_settled()
        if self.trouble in (FULL, UNWRITABLE) and self._probing is None:
            self._probing = done.get_loop().call_later(PROBE_INTERVAL, self._probe)
        if self._waiting:
            self._flush()

    def _checked(self, batch: list[Job], outcomes: list[Outcome]) -> list[Outcome]:
        """On the loop, after a commit, before anyone hears of it: the journal's files are still
        the ones it wrote to (a stat a file, here rather than in the writer thread, where each
        would wait for the GIL again). If one is not, nothing is acknowledged from then on, and
        the writer copies what the open file holds."""
        if self.trouble == GONE:
            return failed(batch, "journal file gone or replaced", GONE)
        lost = self.files.lost()
        if lost is None:
            return outcomes
        self._commits.trouble = GONE
        with suppress(RuntimeError):  # closing: the copy is the next start's to skip
            self._writer.call(self._commits.gone, self._conn, lost)
        return failed(batch, f"journal file {lost} gone or replaced", GONE)

    def _probe(self) -> None:
        """Tries a journal that could not write: a small commit, if there is room again."""
        self._probing = None
        if self.trouble not in (FULL, UNWRITABLE) or self._conn is None:
            return
        future = self._enqueue(
            Job(self._commits.headroom, [], asyncio.get_running_loop().create_future())
        )
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _write(self, batch: list[Job]) -> tuple[list[Outcome], float]:
        """In the writer thread: commits the batch (see ``sinks.journal.commit``)."""
        return self._commits.write(self._conn, batch)


def _nothing(conn: sqlite3.Connection) -> None:
    """An empty commit's write."""
