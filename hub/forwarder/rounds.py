"""One round of the pipeline worker: a batch read from the journal after the cursor, indexed
(deduplicated), published without its duplicates, the cursor moved past what the broker
confirmed; and, once caught up, one batch of an earlier index's rows refilled. The loop around
the rounds (waits, retries, outages, pruning) is ``hub.forwarder.worker``'s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter

from core.errors import SinkUnavailable
from hub.forwarder.ports import Backfill, Cursor, Index, Pending
from sinks.base import Sink
from sinks.journal import DAY, Stored
from sinks.progress import Progress

log = logging.getLogger("hub.forwarder")  # one logger for the worker, whichever part speaks

RESEND_LOOKBACK_BATCHES = 2
"""How many batches back the sink looks for what it has already (``lookback``, in messages)
when it cannot read since the last confirm (a progress file of an earlier hub, without
``confirmed_at``): one batch is in flight at a time. Other hubs publishing on the same exchange
meanwhile can push it past that window (``tests/test_replicas_faults.py`` saw it): the read
since the last confirm is what holds then."""


class Rounds:
    """The worker's batches (``Forwarder`` runs them in its loop)."""

    def __init__(
        self,
        pending: Pending,
        sink: Sink | None,
        cursor: Cursor,
        index: Index,
        *,
        dedup_window: float = 7 * DAY,
        batch: int = 512,
        backfill: Backfill | None = None,
    ) -> None:
        self.pending = pending
        self.sink = sink
        self.cursor = cursor
        self.index = index
        self.dedup_window = dedup_window
        self.batch = batch
        self.progress = Progress()
        self._paused = False
        """The broker refused the last batch: wait ``retry_interval``, whatever arrives."""
        self._started = False
        """The sink was ready once: a pause before is the first connection under way (the sink
        says itself when the broker cannot be reached), not worth a warning."""
        self._unsure = True
        """The batch in flight before a start (a crash) may have reached the broker, the broker
        staying up: the sink is asked what it has of the first one."""
        self._next: list[Stored] = []
        """The batch after the one in flight, read before its confirms (see ``forward_batch``)."""
        self._refilled_from = index.refilling[0] if index.refilling is not None else 0
        """Where the refill of old rows stood at start (logged once when it begins)."""
        self.backfill = backfill
        self._backfill_said = False
        self._backfilled = False
        """The backfill is done (or there was none): not asked again at each idle round."""

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

    async def backfill_batch(self) -> bool:
        """Once caught up, with a shared index: one batch of the events the local index had
        before it (a hub that ran alone), read from the journal and recorded there with the
        local decisions; whether some remain."""
        if self.backfill is None or self._backfilled:
            return False
        span = await asyncio.to_thread(self.backfill.backfilling)
        if span is None:
            self._backfilled = True
            return False
        after, up_to = span
        if not self._backfill_said:
            log.info("shared index: recording the local index's events %d to %d", after + 1, up_to)
            self._backfill_said = True
        rows = [r for r in self._read(after) if r.seq <= up_to]
        done = rows[-1].seq if len(rows) == self.batch else up_to  # (none left: all done)
        events = [(r.seq, r.envelope.id, r.received_at, r.envelope.body) for r in rows]
        await asyncio.to_thread(self.backfill.backfill, events, self.dedup_window, done)
        if await asyncio.to_thread(self.backfill.backfilling) is None:
            log.info("shared index: the local index's events recorded up to event %d", up_to)
            self._backfilled = True
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
