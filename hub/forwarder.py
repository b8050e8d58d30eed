"""The forwarder: journaled events to the broker, in arrival order, at least once.

It reads the events not yet forwarded in batches (``seq`` order, so each provider's events leave
in the order they arrived), publishes a whole batch with every message in flight, and marks the
confirmed ones forwarded. When the broker is down it waits and tries again: the backlog waits on
disk, in the journal, not in memory. After a crash the events not marked forwarded are sent at
start; one confirmed just before the crash may be sent twice (same ``message_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from pathlib import Path

from hub.errors import SinkUnavailable
from sinks import journal as store
from sinks.base import Sink
from sinks.journal import Journal, Stored
from sinks.metrics import Metrics

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self,
        journal: Journal,
        sink: Sink,
        metrics: Metrics,
        *,
        batch: int = 512,
        retry_interval: float = 1.0,
        idle_interval: float = 5.0,
    ) -> None:
        self.journal = journal
        self.sink = sink
        self.metrics = metrics
        self.batch = batch
        self.retry_interval = retry_interval
        self.idle_interval = idle_interval
        self.backlog = 0
        """Events journaled and not yet forwarded."""
        self.oldest: float | None = None
        """Reception time of the oldest event not yet forwarded (epoch seconds)."""
        self._cursor = 0
        self._confirmed: list[Stored] = []
        """Confirmed by the broker, not yet marked forwarded: to mark, not to send again."""
        self._stopping = False
        self._paused = False
        """The broker refused the last batch: wait ``retry_interval``, whatever arrives."""
        self._wake = asyncio.Event()
        self._reader: store.PendingReader | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path:
        return self.journal.path

    def start(self) -> None:
        stats = store.stats(self.path)
        self.backlog = stats.unforwarded
        self.oldest = stats.oldest_unforwarded
        if self.backlog:
            log.info("%d events journaled but not forwarded: forwarding them now", self.backlog)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="forwarder")

    def notify(self, new_events: int) -> None:
        """New events were journaled."""
        if new_events:
            self.backlog += new_events
            if self.oldest is None:
                self.oldest = time.time()
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
            return  # a read may still run in its thread: the connection goes with the object
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.forward_batch():
                    pass
            except SinkUnavailable as exc:  # the journal itself failed: try again later
                log.error("forwarding paused, journal: %s", exc.reason)
            except Exception:  # a bug must not stop forwarding for good
                log.exception("forwarding failed")
            if self._stopping:
                return
            if self._paused:  # new events must not make us knock on a closed door each time
                await asyncio.sleep(self.retry_interval)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.idle_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def forward_batch(self) -> bool:
        """Forwards one batch; whether there may be more to do right away."""
        if self._confirmed:
            await self._forwarded(self._confirmed)
        if not self.sink.ready:
            self._pause("broker_unavailable")
            return False
        if self._reader is None:
            self._reader = store.PendingReader(self.path)
        rows = await asyncio.to_thread(self._reader.read, self._cursor, self.batch)
        if not rows:
            self.oldest = None
            self._resume()
            return False
        self.oldest = rows[0].received_at
        started = time.perf_counter()
        try:
            await self.sink.publish([r.envelope for r in rows])
        except SinkUnavailable as exc:
            await self._forwarded(rows[: exc.done])
            self._pause(exc.reason)
            return False
        self._resume()
        self.metrics.confirm_latency.observe(time.perf_counter() - started)
        await self._forwarded(rows)
        return True

    def _pause(self, reason: str) -> None:
        if not self._paused:
            log.warning("forwarding paused: %s (%d events waiting)", reason, self.backlog)
        self._paused = True

    def _resume(self) -> None:
        if self._paused:
            log.info("forwarding again (%d events waiting)", self.backlog)
        self._paused = False

    async def _forwarded(self, rows: list[Stored]) -> None:
        if not rows:
            return
        self._confirmed = rows
        await self.journal.mark_forwarded([r.seq for r in rows], time.time())
        self._confirmed = []
        self._cursor = rows[-1].seq
        self.backlog = max(self.backlog - len(rows), 0)
        for provider, count in Counter(row.provider for row in rows).items():
            self.metrics.forwarded(provider).inc(count)
