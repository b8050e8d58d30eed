"""``hub.offloop.read``: an operator's read in a thread, the GIL offered more often while one
runs, the usual interval back once none does (whatever ends them)."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from hub import offloop


@pytest.fixture(autouse=True)
def usual_interval():
    usual = sys.getswitchinterval()
    yield usual
    sys.setswitchinterval(usual)


async def test_a_read_runs_in_a_thread_with_the_short_interval(usual_interval) -> None:
    seen: list[tuple[bool, float]] = []

    def lookup(a: int, *, b: int) -> int:
        seen.append(
            (threading.current_thread() is threading.main_thread(), sys.getswitchinterval())
        )
        return a + b

    assert await offloop.read(lookup, 2, b=3) == 5
    assert seen == [(False, offloop.READ_SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == usual_interval


async def test_overlapping_reads_keep_it_short_until_the_last_one_ends(usual_interval) -> None:
    first_may_end, second_may_end = threading.Event(), threading.Event()

    async def until(event: threading.Event) -> None:
        await offloop.read(event.wait, 10)

    first = asyncio.create_task(until(first_may_end))
    second = asyncio.create_task(until(second_may_end))
    await asyncio.sleep(0)  # both begun (each set the count before its thread starts)
    assert sys.getswitchinterval() == offloop.READ_SWITCH_INTERVAL
    first_may_end.set()
    await first
    assert sys.getswitchinterval() == offloop.READ_SWITCH_INTERVAL  # the second still reads
    second_may_end.set()
    await second
    assert sys.getswitchinterval() == usual_interval


async def test_a_failed_or_cancelled_read_puts_the_interval_back(usual_interval) -> None:
    def broken() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        await offloop.read(broken)
    assert sys.getswitchinterval() == usual_interval

    release = threading.Event()
    task = asyncio.create_task(offloop.read(release.wait, 10))
    await asyncio.sleep(0)
    assert sys.getswitchinterval() == offloop.READ_SWITCH_INTERVAL
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()  # (the thread itself finishes on its own)
    assert sys.getswitchinterval() == usual_interval


async def test_a_read_in_an_executor_of_its_own_runs_there(usual_interval) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="own-readers") as own:
        name = await offloop.read_in(own, lambda: threading.current_thread().name)
    assert name.startswith("own-readers")
    assert sys.getswitchinterval() == usual_interval
