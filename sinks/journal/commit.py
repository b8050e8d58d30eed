"""The writer thread's side of the journal: a batch of jobs committed in one transaction, and
what it finds wrong on disk, checked where it is cheap, once a commit.

- *The file deleted or replaced* (``rm journal.sqlite3*``): SQLite would go on writing to the
  open, unlinked files, and every acknowledgement would be lost at the next start. After each
  commit, before its requests are answered, the loop compares the device and inode of the
  database, its WAL and its index with those it opened (``Journal._checked``); if one differs,
  that commit is not acknowledged, nothing is from then on (``journal_gone``, until a restart),
  and the writer copies what the open file holds beside it
  (``journal.sqlite3.salvaged-<time>``, :meth:`Committer.gone`) for the operator to put back.
- *Full or unwritable* (``journal_full``, ``journal_unwritable``): the batch is refused; the
  journal is not ready, and tries a small commit every second until one passes (once the file
  system has ``HEADROOM`` free bytes, and a capped journal a few pages).
- *The cap* (``max_bytes``) holds for everything on disk: a quarter of it (at most 8 MiB) for
  the WAL, checked before each commit against the pages the batch may write; 32 KiB for the
  WAL's index; the rest for the database (``max_page_count``), less what the other files the
  cap counts take (``also_counted``: the pipeline worker's, which the journal never opens; the
  hub says what they take), looked at before each commit and each probe.

The loop's side (batches, timeouts, readiness) is ``sinks.journal.writer``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import SinkUnavailable
from sinks.journal import events as events_table
from sinks.journal.files import Cap, Files
from sinks.journal.schema import Row, Writer

log = logging.getLogger(__name__)

FULL, UNWRITABLE, GONE, STALLED = (
    "journal_full",
    "journal_unwritable",
    "journal_gone",
    "journal_stalled",
)
COMMIT_FRAMES = 8
"""Pages any commit may write besides its jobs' own: B-tree roots and parents, the sequence."""
_CHECKPOINT_TRIES = 100
"""Tries, 10 ms apart, of a checkpoint that empties a capped journal's WAL before a commit."""


@dataclass(slots=True)
class Job:
    write: Writer | None
    """What the job does with the connection; None for an append: its ``rows``."""
    rows: list[Row]
    future: asyncio.Future[Any]
    frames: int = 2
    """At most how many pages the job adds to a commit (the WAL's share of a capped journal)."""
    deadline: float = 0.0
    """Loop time past which its request stops waiting and is told to retry (a request's job;
    the journal's own jobs, probes and pokes, have none: 0)."""


Outcome = tuple[Any, "SinkUnavailable | None"]
"""What a job got: its result, or why it was not committed."""


class Committer:
    """Commits batches on the writer's connection (in the writer thread, one batch at a time),
    and keeps :attr:`trouble`: why the journal cannot take writes now."""

    def __init__(
        self,
        path: Path,
        files: Files,
        *,
        commit_timeout: float,
        also_counted: Callable[[], int] | None = None,
    ):
        self.path = path
        self.files = files
        self.commit_timeout = commit_timeout
        self.cap: Cap | None = None
        """With ``max_bytes``: its shares (the WAL's budget, the database's pages)."""
        self.also_counted = also_counted
        """Bytes other files the cap counts take now (from the writer thread)."""
        self._pages: int | None = None
        """The database's ``max_page_count`` as last set beside them."""
        self.trouble: str | None = None
        """Why the journal cannot take writes now (a reason), or None."""

    def write(
        self, conn: sqlite3.Connection | None, batch: list[Job]
    ) -> tuple[list[Outcome], float]:
        """Commits the batch; checks afterwards that the journal's files are still the ones it
        wrote to, so that nothing is acknowledged that went to a deleted file."""
        started = time.perf_counter()
        if conn is None or self.trouble == GONE:
            reason = "journal_closed" if conn is None else GONE
            return failed(batch, "journal cannot write", reason), 0.0
        outcomes = self._commit(conn, batch)
        error = next((error for _, error in outcomes if error is not None), None)
        trouble = error.reason if error is not None else None
        if self.trouble == GONE:  # found by the loop meanwhile (``Journal._committed``)
            return failed(batch, "journal file gone or replaced", GONE), 0.0
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

    def headroom(self, conn: sqlite3.Connection) -> None:
        """The probe's write: a page written, if the file system has ``HEADROOM`` bytes free
        and a capped journal room for a few pages more."""
        if not self.files.has_headroom():
            raise SinkUnavailable("the journal's file system is still full", reason=FULL)
        self._beside(conn)
        if self.cap is not None and Cap.pages_left(conn) < 4 * COMMIT_FRAMES:
            raise SinkUnavailable("the journal is still at its cap", reason=FULL)
        events_table.touch(conn)

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Outcome]:
        try:
            self._make_room(conn, batch)
            appends = [job.rows for job in batch if job.write is None]
            if len(appends) == len(batch) and events_table.one_statement(appends):
                # The usual batch: one INSERT, its own transaction in autocommit mode, synced at
                # its end. One call into SQLite, so one wait for the GIL where a BEGIN and a
                # COMMIT would add two (each a wait of up to the switch interval while the
                # loop's thread is busy: the acknowledgement's latency).
                return [(result, None) for result in events_table.append(conn, appends)]
            conn.execute("BEGIN IMMEDIATE")
            appended = events_table.append(conn, appends)
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

    def _make_room(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        """In a capped journal, the WAL must keep within its budget once the batch is in it:
        if it would not, a checkpoint empties it first; if it cannot, the batch is refused."""
        if self.cap is None:
            return
        self._beside(conn)
        frames = sum(job.frames for job in batch) + COMMIT_FRAMES
        if self.cap.fits(self.files.size("-wal"), frames):
            return
        for _ in range(_CHECKPOINT_TRIES):  # busy at once while the checkpointer runs one
            with suppress(sqlite3.Error):
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    break
            time.sleep(0.01)
        if not self.cap.fits(self.files.size("-wal"), frames):
            raise SinkUnavailable("the journal's WAL is at its share of the cap", reason=FULL)

    def _beside(self, conn: sqlite3.Connection) -> None:
        """The database's pages, less what the other files the cap counts take now."""
        if self.cap is None or self.also_counted is None:
            return
        pages = self.cap.pages_beside(self.also_counted())
        if pages != self._pages:
            Cap.limit(conn, pages)
            self._pages = pages

    def gone(self, conn: sqlite3.Connection | None, lost: str) -> None:
        """In the writer thread, once the loop found the journal's file deleted or replaced
        (``trouble`` is ``GONE`` already): a copy of what the open file still holds (every event
        acknowledged) beside it, for the operator."""
        self.trouble = GONE
        if conn is None:
            return
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


def failed(jobs: Sequence[Job], message: str, reason: str) -> list[Outcome]:
    return [(None, SinkUnavailable(message, reason=reason)) for _ in jobs]


def settle(jobs: list[Job], outcomes: list[Outcome]) -> None:
    """On the loop: gives each job's request its outcome (unless it timed out already)."""
    for job, (result, error) in zip(jobs, outcomes, strict=True):
        if job.future.done():  # timed out: the request has been answered already
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
