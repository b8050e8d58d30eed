"""The pipeline worker in a process of its own: ``hub forward``, and the supervisor ``hub serve``
uses, with a broker or without one.

Indexing, deduplicating and publishing cost more CPU per event than answering a callback
(SQLite indexes, aio-pika, confirms). In the hub's event loop they competed with the callbacks
and delayed their answers; in its own process the worker uses the machine's other core, and the
operating system keeps it from holding up callbacks. The journal is the only link: the hub
appends, the worker reads (WAL: readers never wait for the writer) and keeps what it decided in
files of its own (``sinks.index``, ``sinks.progress``).

- One worker per data directory: it holds ``forwarder.lock`` while it runs.
- It exits when its parent (the hub) is gone, after the batch in flight.
- The supervisor starts it with the hub's own settings, restarts it if it dies, and stops it
  with SIGTERM (it forwards for up to ``HUB_DRAIN_TIMEOUT`` seconds, then exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from hub.forwarder import RESEND_LOOKBACK_BATCHES, Backfill, Forwarder, Index
from hub.settings import Settings
from sinks.base import Sink
from sinks.index import IndexFile
from sinks.journal import JOURNAL_FILE, PendingReader, marked_prefix
from sinks.progress import ProgressFile
from sinks.rabbitmq import RabbitMQSink, StreamRetention

log = logging.getLogger(__name__)

LOCK_FILE = "forwarder.lock"
RESTART_DELAY = 1.0


def sink_of(settings: Settings) -> RabbitMQSink:
    """The configured broker (``HUB_RABBITMQ_URL`` must be set)."""
    assert settings.rabbitmq_url is not None
    retention = StreamRetention(settings.stream_max_age, settings.stream_max_bytes)
    return RabbitMQSink(
        settings.rabbitmq_url,
        exchange=settings.exchange,
        publish_timeout=settings.publish_timeout,
        stream=retention if settings.stream else None,
        lookback=settings.forward_batch * RESEND_LOOKBACK_BATCHES,
    )


async def run(settings: Settings, *, parent: int | None = None) -> int:
    """``hub forward``: processes the journal (and publishes it, with ``HUB_RABBITMQ_URL``)
    until SIGTERM/SIGINT, or until ``parent`` is gone."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    lock = os.open(settings.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not await _locked(lock, stop):
            return 0
        sink = sink_of(settings) if settings.rabbitmq_url is not None else None
        if sink is not None:
            sink.start()
        with worker(settings, settings.data_dir / JOURNAL_FILE, sink) as forwarder:
            forwarder.start()
            watch = loop.create_task(_orphaned(parent, stop)) if parent is not None else None
            await stop.wait()
            if watch is not None:
                watch.cancel()
            await forwarder.stop(settings.drain_timeout)
            if sink is not None:
                await sink.close()
    finally:
        os.close(lock)  # and with it the lock
    return 0


@contextlib.contextmanager
def worker(settings: Settings, journal: Path, sink: Sink | None) -> Iterator[Forwarder]:
    """The pipeline worker on ``journal``, to ``sink`` (None: index only), with its cursor and
    its index opened, and closed on the way out: what ``hub forward`` and the inline worker of
    ``hub.app`` both run."""
    progress = ProgressFile.open(settings.data_dir, start=lambda: marked_prefix(journal))
    try:
        local = IndexFile.open(settings.data_dir)
        try:
            with _indexes(settings, local) as (index, backfill):
                yield Forwarder(
                    PendingReader(journal),
                    sink,
                    progress,
                    index,
                    dedup_window=settings.dedup_window,
                    retention=settings.retention,
                    batch=settings.forward_batch,
                    shared_index=settings.index_url is not None,
                    backfill=backfill,
                )
        finally:
            local.close()
    finally:
        progress.close()


@contextlib.contextmanager
def _indexes(settings: Settings, local: IndexFile) -> Iterator[tuple[Index, Backfill | None]]:
    """The local index alone, or with ``HUB_INDEX_URL`` the local and the shared one (and the
    shared one's backfill from the local one)."""
    if settings.index_url is None:
        yield local, None
        return
    # The shared index's driver is the optional extra (callback-hub[postgres]): imported only
    # where it is configured, since loading it costs every other hub a second at each start.
    from hub.shared_index import replicated

    url = settings.index_url.get_secret_value()
    with replicated(url, settings.data_dir, local, timeout=settings.index_timeout) as index:
        yield index, index


async def _locked(fd: int, stop: asyncio.Event) -> bool:
    """Waits for the data directory's forwarder lock (False: stopped while waiting)."""
    said = False
    while not stop.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not said:
                log.warning("another forwarder runs on this data directory: waiting for it")
                said = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await stop.wait()
    return False


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:  # noqa: ASYNC110 - no event says a parent is gone
        await asyncio.sleep(0.5)
    log.warning("the hub (pid %d) is gone: stopping", parent)
    stop.set()


def environment(settings: Settings) -> dict[str, str]:
    """``HUB_*`` variables that give a child process exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"HUB_{name.upper()}"] = str(value)
    return env


class ForwarderProcess:
    """``hub forward`` as a child of the hub, restarted if it dies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="forwarder")

    async def _supervise(self) -> None:
        argv = [sys.executable, "-m", "hub", "forward", "--parent", str(os.getpid())]
        while not self._stopping:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, env=environment(self.settings), stdin=asyncio.subprocess.DEVNULL
            )
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("the forwarder exited (%s): starting it again", code)
            await asyncio.sleep(RESTART_DELAY)

    async def stop(self) -> None:
        """SIGTERM, then waits for it to forward what it can (``drain_timeout``) and exit."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(self.settings.drain_timeout + 5):
                    await proc.wait()
            except TimeoutError:
                log.error("the forwarder did not stop in time: killed")
                proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
