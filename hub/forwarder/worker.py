"""The pipeline worker's loop: the rounds (``hub.forwarder.rounds``) one after the other, the
index pruned at start then hourly, a wait when there is nothing to do (or a wake-up from the
hub, inline), a pause when the broker or the shared index is away (the backlog waits in the
journal), and the stop that finishes the batch in flight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from core.errors import IndexUnavailable
from hub.forwarder.ports import Backfill, Cursor, Index, Pending
from hub.forwarder.rounds import Rounds
from sinks.base import Sink
from sinks.journal import DAY

log = logging.getLogger("hub.forwarder")  # one logger for the worker, whichever part speaks

PRUNE_INTERVAL = 3600.0
"""Seconds between two prunings of the index."""


class Forwarder(Rounds):
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
        backfill: Backfill | None = None,
    ) -> None:
        super().__init__(
            pending, sink, cursor, index, dedup_window=dedup_window, batch=batch, backfill=backfill
        )
        self.retention = retention
        """Seconds the index keeps an event (the journal's retention, at least the window)."""
        self._pruned = -math.inf
        """When the index was last pruned (monotonic time): at start, then every hour."""
        self.retry_interval = retry_interval
        self.poll_interval = poll_interval
        """How often the journal is looked at for new events when there was nothing to do."""
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._index_away = False
        """The shared index could not record the last batch (said once until it can)."""
        self.shared_index = shared_index
        """The index is shared (``HUB_INDEX_URL``): whether it is reached is saved with the
        cursor (``Progress.index_connected``), for ``/metrics``."""

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
                more = await self.refill_batch() or await self.backfill_batch()
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

    def _index_reached(self, up: bool) -> None:
        if self.shared_index and self.progress.index_connected != up:
            self.progress.index_connected = up
            self.cursor.save(self.progress)
