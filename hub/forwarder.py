"""The pipeline worker: every journaled event processed once, in arrival order, after the
acknowledgement; with a broker, published to it at least once.

The callbacks' side only appends to the journal (``sinks.journal``: insert-only, one shared sync,
nothing looked up). Everything else happens here, in ``seq`` order, a batch at a time:

1. **index** (with or without a broker): each event goes to the worker's own file
   (``sinks.index``), which decides whether it is a provider's retry within the deduplication
   window (a *duplicate*), counts events and duplicates, and keeps what the console looks
   events up by. Its cursor moves in the same transaction;
2. **publish** (with a broker): the batch, duplicates left out, goes to the broker with every
   message in flight; the forwarder's cursor (``sinks.progress``) moves past the confirmed
   prefix, duplicates included. When the broker is down it waits and tries again: the backlog
   waits on disk, in the journal. After a crash the events after the cursor are sent at start;
   a batch confirmed just before the crash may be on the broker already. So the first batch
   after a start is first shown to the sink (``Sink.already_published``: the RabbitMQ sink reads
   its stream's tail), and what is there already is not sent again; a sink that cannot tell (no
   stream) gets the whole batch again, same ``message_id``. After a broker outage the batch in
   flight is sent again whole (see ``_pause``).

The index is never behind the forwarder's cursor: an index file newer than the journal (an
upgrade) is first brought up to it, nothing published meanwhile. An index of an earlier format
(no read model) keeps its rows and decisions; once caught up, the worker fills their read
model's columns from the journal's bodies, a batch at a time between its other work (the index
never opens the journal). Index writes run in a thread, so that an inline worker never holds
the hub's event loop on a disk that stalls.

It only reads the journal, so it runs in a process of its own (``hub forward``, what
``hub serve`` starts; see ``hub.forward_process``) or in the hub's event loop. It is written
against four small interfaces and opens no file itself: what it reads (:class:`Pending`, the
journal's ``PendingReader``), its index (:class:`Index`, ``sinks.index.IndexFile``), where it
publishes (``sinks.base.Sink``, none without a broker) and where it keeps its cursor
(:class:`Cursor`, ``sinks.progress.ProgressFile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections import Counter
from typing import Protocol

from core.errors import IndexUnavailable, SinkUnavailable
from sinks.base import Sink
from sinks.index import Journaled
from sinks.journal import DAY, Stored
from sinks.progress import Progress

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0
"""Seconds between two prunings of the index."""

RESEND_LOOKBACK_BATCHES = 2
"""How many batches back the sink looks for what it has already (``lookback``, in messages): one
batch is in flight at a time; the second covers other hubs publishing on the same exchange."""


class Pending(Protocol):
    """The events waiting to be forwarded, in arrival order."""

    def read(self, after: int, limit: int) -> list[Stored]:
        """Up to ``limit`` events with ``seq`` above ``after``."""
        ...

    def last_seq(self) -> int: ...

    def close(self) -> None: ...


class Index(Protocol):
    """What the worker decided about each journaled event (``sinks.index.IndexFile``; with a
    shared index, ``hub.shared_index.ReplicatedIndex``)."""

    @property
    def cursor(self) -> int:
        """Every journaled event up to it is indexed."""
        ...

    @property
    def refilling(self) -> tuple[int, int] | None:
        """Rows after the first ``seq`` and up to the second that lack the read model's
        columns (an index made by an earlier hub): filled from the journal's bodies
        (:meth:`refill`)."""
        ...

    def process(self, events: list[Journaled], window: float) -> list[bool]:
        """Indexes events after the cursor; for each, whether it is a duplicate."""
        ...

    def refill(self, events: list[Journaled], up_to: int) -> None:
        """Fills old rows from their events; every row up to ``up_to`` is done."""
        ...

    def duplicates(self, after: int, up_to: int) -> set[int]: ...

    def prune(self, received_before: float) -> int:
        """Forgets events received before the given time; how many."""
        ...


class Cursor(Protocol):
    """Where the forwarder keeps how far it got (and its counts)."""

    def load(self) -> Progress: ...

    def save(self, progress: Progress) -> None: ...


class Forwarder:
    def __init__(
        self,
        pending: Pending,
        sink: Sink | None,
        cursor: Cursor,
        index: Index,
        *,
        dedup_window: float = 7 * DAY,
        retention: float = 14 * DAY,
        batch: int = 512,
        retry_interval: float = 1.0,
        poll_interval: float = 0.01,
        shared_index: bool = False,
    ) -> None:
        self.pending = pending
        self.sink = sink
        self.cursor = cursor
        self.index = index
        self.dedup_window = dedup_window
        self.retention = retention
        """Seconds the index keeps an event (the journal's retention, at least the window)."""
        self._pruned = -math.inf
        """When the index was last pruned (monotonic time): at start, then every hour."""
        self.batch = batch
        self.retry_interval = retry_interval
        self.poll_interval = poll_interval
        """How often the journal is looked at for new events when there was nothing to do."""
        self.progress = Progress()
        self._stopping = False
        self._paused = False
        """The broker refused the last batch: wait ``retry_interval``, whatever arrives."""
        self._started = False
        """The sink was ready once: a pause before is the first connection under way (the sink
        says itself when the broker cannot be reached), not worth a warning."""
        self._wake = asyncio.Event()
        self._unsure = True
        """The batch in flight before a start (a crash) may have reached the broker, the broker
        staying up: the sink is asked what it has of the first one."""
        self._next: list[Stored] = []
        """The batch after the one in flight, read before its confirms (see ``forward_batch``)."""
        self._task: asyncio.Task[None] | None = None
        self._index_away = False
        """The shared index could not record the last batch (said once until it can)."""
        self.shared_index = shared_index
        """The index is shared (``HUB_INDEX_URL``): whether it is reached is saved with the
        cursor (``Progress.index_connected``), for ``/metrics``."""
        self._refilled_from = index.refilling[0] if index.refilling is not None else 0
        """Where the refill of old rows stood at start (logged once when it begins)."""

    def start(self) -> None:
        self.progress = self.cursor.load()
        waiting = self.pending.last_seq() - self._done()
        if waiting > 0:
            log.info("%d events journaled but not processed: processing them now", waiting)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="forwarder")

    def notify(self) -> None:
        """New events were journaled (in the same process: no need to wait for the next look)."""
        self._wake.set()

    async def stop(self, flush_timeout: float) -> None:
        """Forwards what it can within ``flush_timeout`` seconds, then stops. The batch in
        flight is finished, not cancelled: cancelled, its confirmed events would be sent again."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(flush_timeout):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        self.pending.close()

    async def _run(self) -> None:
        while True:
            try:
                if time.monotonic() - self._pruned > PRUNE_INTERVAL:
                    self._pruned = time.monotonic()
                    await asyncio.to_thread(self.index.prune, time.time() - self.retention)
                while await self.forward_batch():
                    pass
                more = await self.refill_batch()
            except IndexUnavailable as exc:  # the shared index away: its batch waits, journaled
                if not self._index_away:
                    waiting = self.pending.last_seq() - self._done()
                    log.warning(
                        "shared index unavailable (%s): %d events wait in the journal",
                        exc,
                        waiting,
                    )
                self._index_away = self._paused = self._unsure = True
                self._index_reached(False)
                more = False
            except Exception:  # a bug or a disk error must not stop forwarding for good
                log.exception("forwarding failed")
                self._paused = self._unsure = True
                more = False
            else:
                self._index_reached(True)
                if self._index_away:
                    log.info("shared index reachable again: catching up")
                    self._index_away = False
                    if self.sink is None:  # (with a broker, the batch's publish resumed it)
                        self._paused = False
            if self._stopping:
                return
            if self._paused:  # new events must not make us knock on a closed door each time
                await asyncio.sleep(self.retry_interval)
                continue
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def forward_batch(self) -> bool:
        """Processes one batch; whether there may be more to do right away."""
        if self.sink is None:  # no broker: index only
            rows = self._next or self._read(self.index.cursor)
            self._next = []
            if rows:
                await self._index(rows)
            return len(rows) == self.batch
        if self.index.cursor < self.progress.cursor:  # a new index: catch up, publish nothing
            rows = [r for r in self._read(self.index.cursor) if r.seq <= self.progress.cursor]
            if rows:  # (none: those events are gone, retention; the index starts after them)
                await self._index(rows)
                return True
        if not self.sink.ready:
            self._pause("broker_unavailable")
            return False
        rows, self._next = self._next or self._read(self.progress.cursor), []
        if not rows:
            self._resume()
            return False
        duplicates = await self._index(rows)
        sending = [r for r in rows if r.seq not in duplicates]
        if self._unsure and sending:  # after a start (a crash): what is there already
            try:
                sending = await self._not_yet_published(sending)
            except SinkUnavailable as exc:
                self._pause(exc.reason)
                return False
        started = time.perf_counter()
        envelopes = [r.envelope for r in sending]
        publishing = asyncio.ensure_future(self.sink.publish(envelopes)) if envelopes else None
        # The next batch is read now, before the publish task first runs (the read is synchronous:
        # it does not overlap the broker's work, it only saves a turn of the loop after the
        # confirms), and indexed while this one waits for its confirms (in a thread: SQLite lets
        # the loop run meanwhile). It is sent only if this one is confirmed whole (else the next
        # round reads again from the cursor; what was indexed stays indexed).
        upcoming: list[Stored] = []
        if len(rows) == self.batch:
            with contextlib.suppress(sqlite3.Error):  # read again next round
                upcoming = self._read(rows[-1].seq)
        indexing = asyncio.ensure_future(self._index(upcoming)) if upcoming else None
        try:
            if publishing is not None:  # else every one of them is a duplicate
                await publishing
        except SinkUnavailable as exc:
            # confirmed: the rows before the first envelope not confirmed (duplicates included)
            end = rows.index(sending[exc.done]) if exc.done < len(sending) else len(rows)
            self._forwarded(rows[:end], set(duplicates), None)
            self._pause(exc.reason)
            return False
        finally:
            if indexing is not None:  # one index write at a time: done before the next round
                await asyncio.wait([indexing])
        if indexing is not None and indexing.exception() is not None:
            upcoming = []  # indexed again next round (the error comes back there, if it lasts)
        self._next = upcoming
        self._forwarded(rows, duplicates, time.perf_counter() - started)
        self._resume()
        return True

    async def refill_batch(self) -> bool:
        """Once caught up: one batch of the old rows an earlier hub's index holds, filled with
        the read model's columns from the journal's bodies; whether some remain."""
        if self.index.refilling is None:
            return False
        after, up_to = self.index.refilling
        if after == self._refilled_from:
            log.info("index: filling the read model of events %d to %d", after + 1, up_to)
        rows = [r for r in self._read(after) if r.seq <= up_to]
        done = rows[-1].seq if len(rows) == self.batch else up_to  # (none left: all done)
        fresh = [(r.seq, r.envelope.id, r.received_at, r.envelope.body) for r in rows]
        await asyncio.to_thread(self.index.refill, fresh, done)
        if self.index.refilling is None:
            log.info("index: read model filled up to event %d", up_to)
            return False
        return True

    async def _index(self, rows: list[Stored]) -> set[int]:
        """Indexes the rows not indexed yet (in a thread); the ``seq`` of the duplicates among
        all of them."""
        if not rows:
            return set()
        known = self.index.cursor
        fresh = [
            (r.seq, r.envelope.id, r.received_at, r.envelope.body) for r in rows if r.seq > known
        ]
        duplicates: set[int] = set()
        if rows[0].seq <= known:
            duplicates = await asyncio.to_thread(self.index.duplicates, rows[0].seq - 1, known)
        if fresh:
            flags = await asyncio.to_thread(self.index.process, fresh, self.dedup_window)
            duplicates.update(e[0] for e, duplicate in zip(fresh, flags, strict=True) if duplicate)
        return duplicates

    def _done(self) -> int:
        """The ``seq`` up to which every event is processed (indexed, and published if need be)."""
        return self.index.cursor if self.sink is None else self.progress.cursor

    async def _not_yet_published(self, rows: list[Stored]) -> list[Stored]:
        """``rows`` but those the sink has already (raises ``SinkUnavailable``: ask again)."""
        assert self.sink is not None
        since = self.progress.confirmed_at or None  # (other hubs publish meanwhile)
        found = await self.sink.already_published([r.envelope for r in rows], since=since)
        self._unsure = False
        if found is None:  # the sink could not tell (and said why): copies are possible
            self.progress.unchecked_resends += 1
            return rows
        if found:
            log.info("%d events on the broker already (sent before an interruption)", len(found))
        return [r for r in rows if r.envelope.id not in found]

    def _read(self, after: int) -> list[Stored]:
        return self.pending.read(after, self.batch)  # on the primary key: a few ms a batch

    def _pause(self, reason: str) -> None:
        # Not ``_unsure``: a broker that went away may have kept a message in its stream and lost
        # it from another queue (seen: 4 events missing from a durable queue, there in the
        # stream). After an outage the batch in flight is sent again whole: at most one batch
        # twice, none lost.
        if not self._paused and self._started:
            waiting = self.pending.last_seq() - self._done()
            log.warning("forwarding paused: %s (%d events waiting)", reason, waiting)
        self._paused = True
        self._connected(False)

    def _resume(self) -> None:
        if self._paused and self._started:
            log.info("forwarding again")
        self._paused, self._started = False, True
        self._connected(True)

    def _index_reached(self, up: bool) -> None:
        if self.shared_index and self.progress.index_connected != up:
            self.progress.index_connected = up
            self.cursor.save(self.progress)

    def _connected(self, up: bool) -> None:
        if self.progress.broker_connected != up:
            self.progress.broker_connected = up
            self.cursor.save(self.progress)

    def _forwarded(self, rows: list[Stored], duplicates: set[int], seconds: float | None) -> None:
        if not rows:
            return
        published = Counter(r.provider for r in rows if r.seq not in duplicates)
        self.progress.confirmed(rows[-1].seq, published, seconds)
        self.cursor.save(self.progress)
