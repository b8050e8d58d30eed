"""An operator's read (the API's lookups, the console's pages) run in a thread, so that the
callbacks keep the event loop while it reads, and answered without waiting on the GIL.

A read in a thread gives the GIL up at every step of SQLite (each row; a psycopg round trip
likewise) and must get it back from the event loop's thread, which under load always wants
it: Python hands it over only after the switch interval (5 ms by default), so a timeline of a
dozen steps waited tens of milliseconds for the GIL alone (measured: a message's timeline on a
million events, 1.2 ms in the loop's own thread, p50 12 ms and p99 119 ms in a thread beside a
busy one; 8 and 31 ms with a 1 ms interval, 6 and 20 ms with 0.5 ms).

So while at least one such read runs, the interpreter's switch interval is
:data:`READ_SWITCH_INTERVAL`, and it is put back when the last one ends. The callbacks pay
only then: a few more switches a millisecond, during the few milliseconds of a read. The
interval is the process's (``sys.setswitchinterval``), hence one count for the process.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

READ_SWITCH_INTERVAL = 0.0005
"""Seconds between two offers of the GIL to another thread while a read runs."""

_reads = 0
"""Reads running (in this process's event loop: one thread counts them)."""
_usual = sys.getswitchinterval()
"""The interval to put back once no read runs (the one in force when the first one began)."""


async def read(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a thread of the loop's default executor, the GIL offered
    every :data:`READ_SWITCH_INTERVAL` seconds meanwhile."""
    return await read_in(None, fn, *args, **kwargs)


async def read_in(
    executor: Executor | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """:func:`read` in a thread of ``executor`` (None: the loop's default one)."""
    global _reads, _usual
    if _reads == 0:
        _usual = sys.getswitchinterval()
        sys.setswitchinterval(READ_SWITCH_INTERVAL)
    _reads += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, partial(fn, *args, **kwargs))
    finally:
        _reads -= 1
        if _reads == 0:
            sys.setswitchinterval(_usual)
