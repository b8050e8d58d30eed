"""The forwarder: journaled events to the broker, in arrival order, at least once.

It reads the events after its cursor in batches (``seq`` order, so each provider's events leave
in the order they arrived), publishes a whole batch with every message in flight, and moves the
cursor past the confirmed prefix (``sinks.progress``). When the broker is down it waits and tries
again: the backlog waits on disk, in the journal, not in memory. After a crash the events after
the cursor are sent at start; a batch confirmed just before the crash, or whose confirms a lost
connection took, may be on the broker already. So the first batch after a start and after each
interrupted publish is first shown to the sink (``Sink.already_published``: the RabbitMQ sink
reads its stream's tail), and what is there already is not sent again; a sink that cannot tell
(no stream) gets the whole batch again, same ``message_id``.

It only reads the journal, so it can run in a process of its own (``hub forward``, what
``hub serve`` starts with a broker; see ``hub.forward_process``) or in the hub's event loop.

It is written against three small interfaces, and opens no file itself: what it reads
(:class:`Pending`, the journal's ``PendingReader``), where it publishes (``sinks.base.Sink``) and
where it keeps its cursor (:class:`Cursor`, ``sinks.progress.ProgressFile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter
from typing import Protocol

from core.errors import SinkUnavailable
from sinks.base import Sink
from sinks.journal import Stored
from sinks.progress import Progress

log = logging.getLogger(__name__)

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


class Cursor(Protocol):
    """Where the forwarder keeps how far it got (and its counts)."""

    def load(self) -> Progress: ...

    def save(self, progress: Progress) -> None: ...


class Forwarder:
    def __init__(
        self,
        pending: Pending,
        sink: Sink,
        cursor: Cursor,
        *,
        batch: int = 512,
        retry_interval: float = 1.0,
        poll_interval: float = 0.01,
    ) -> None:
        self.pending = pending
        self.sink = sink
        self.cursor = cursor
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
        """The batch in flight may have reached the broker without its confirms (a start, an
        interrupted publish): the sink is asked what it has of the next one."""
        self._next: list[Stored] = []
        """The batch after the one in flight, read before its confirms (see ``forward_batch``)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.progress = self.cursor.load()
        waiting = self.pending.last_seq() - self.progress.cursor
        if waiting > 0:
            log.info("%d events journaled but not forwarded: forwarding them now", waiting)
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
                while await self.forward_batch():
                    pass
            except Exception:  # a bug or a disk error must not stop forwarding for good
                log.exception("forwarding failed")
                self._paused = self._unsure = True
            if self._stopping:
                return
            if self._paused:  # new events must not make us knock on a closed door each time
                await asyncio.sleep(self.retry_interval)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def forward_batch(self) -> bool:
        """Forwards one batch; whether there may be more to do right away."""
        if not self.sink.ready:
            self._pause("broker_unavailable")
            return False
        rows, self._next = self._next or self._read(self.progress.cursor), []
        if not rows:
            self._resume()
            return False
        try:
            sending = await self._not_yet_published(rows) if self._unsure else rows
        except SinkUnavailable as exc:
            self._pause(exc.reason)
            return False
        if not sending:  # all on the broker already
            self._forwarded(rows, None)
            self._resume()
            return True
        started = time.perf_counter()
        publishing = asyncio.ensure_future(self.sink.publish([r.envelope for r in sending]))
        # The next batch is read now, before the publish task first runs (the read is synchronous:
        # it does not overlap the broker's work, it only saves a turn of the loop after the
        # confirms). It is sent only if this one is confirmed whole (else the next round reads
        # again from the cursor).
        upcoming: list[Stored] = []
        if len(rows) == self.batch:
            with contextlib.suppress(sqlite3.Error):  # read again next round
                upcoming = self._read(rows[-1].seq)
        try:
            await publishing
        except SinkUnavailable as exc:
            confirmed_below = sending[exc.done].seq if exc.done < len(sending) else rows[-1].seq + 1
            self._forwarded([r for r in rows if r.seq < confirmed_below], None)
            self._pause(exc.reason)
            return False
        self._next = upcoming
        self._forwarded(rows, time.perf_counter() - started)
        self._resume()
        return True

    async def _not_yet_published(self, rows: list[Stored]) -> list[Stored]:
        """``rows`` but those the sink has already (raises ``SinkUnavailable``: ask again)."""
        found = await self.sink.already_published([r.envelope for r in rows])
        self._unsure = False
        if found is None:  # the sink could not tell (and said why): copies are possible
            self.progress.unchecked_resends += 1
            return rows
        if found:
            log.info("%d events on the broker already (sent before an interruption)", len(found))
        return [r for r in rows if r.envelope.id not in found]

    def _read(self, after: int) -> list[Stored]:
        return self.pending.read(after, self.batch)  # indexed: a few ms for a whole batch

    def _pause(self, reason: str) -> None:
        self._unsure = True
        if not self._paused and self._started:
            waiting = self.pending.last_seq() - self.progress.cursor
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

    def _forwarded(self, rows: list[Stored], seconds: float | None) -> None:
        if not rows:
            return
        self.progress.confirmed(rows[-1].seq, Counter(r.provider for r in rows), seconds)
        self.cursor.save(self.progress)
