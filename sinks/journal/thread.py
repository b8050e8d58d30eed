"""The journal's writer thread: one thread taking the loop's commits from a queue, each commit's
result handed back to the loop.

Not a ``ThreadPoolExecutor``: its ``submit`` takes Python-level locks (its shutdown lock, the
idle semaphore's condition) that the pool's thread also takes after each item. When the
interpreter switched threads while the writer held one, the event loop's next ``submit``
blocked on it until the writer got the GIL back and let go: measured under GET load on the
hub's one core, ``submit`` took 52 µs at p50, 12.6 ms at p99 and up to 72 ms, 7 % of the event
loop's time spent blocked there. Here the loop only puts an item on a ``SimpleQueue`` (C, no
Python-level lock) and the thread answers with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

_Item = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.AbstractEventLoop | None", Any]


class WriterThread:
    """One thread running what it is given, in order, until :meth:`shutdown`; started with
    the first (a journal opened and never written starts none, as an executor's)."""

    def __init__(self, name: str) -> None:
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._closed = False
        self._name = name
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in the thread; its result (or exception) in the future, on the loop."""
        if self._closed:
            raise RuntimeError("the writer thread is shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((fn, args, loop, future))
        return future

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` in the thread, nobody waiting for it (an exception is logged)."""
        if self._closed:
            raise RuntimeError("the writer thread is shut down")
        self._put((fn, args, None, None))

    def shutdown(self) -> None:
        """Runs what was given, then stops the thread and waits for it."""
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        if threading.current_thread() is not thread:
            thread.join()

    def _put(self, item: _Item) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args, loop, future = item
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to whoever waits, as an executor does
                result, error = None, exc
            if loop is None:
                if error is not None:
                    log.error("journal writer: %r", error)
                continue
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
