"""A request waits for its commit at most ``commit_timeout``, through one timer per journal."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.errors import SinkUnavailable
from sinks.journal import Journal
from sinks.journal.commit import STALLED
from tests.support import event


async def test_a_commit_that_does_not_come_tells_each_waiting_request_to_retry(tmp_path) -> None:
    journal = Journal.open(tmp_path, commit_timeout=0.3)
    release = threading.Event()
    real = journal._commits.write

    def blocked(conn, batch):  # the disk stalls until the test lets it go
        release.wait(30)
        return real(conn, batch)

    journal._commits.write = blocked  # type: ignore[method-assign]
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = journal.append([event(1)])
        second = journal.append([event(2)])
        await asyncio.sleep(0.1)  # paces a third request: it comes while the commit is blocked
        third = journal.append([event(4)])  # waits behind that commit
        for waiting in (first, second, third):
            with pytest.raises(SinkUnavailable) as refused:
                await waiting
            assert refused.value.reason == STALLED
        assert 0.3 <= loop.time() - started < 5
        assert not journal.ready  # the commit under way outlasts the timeout
    finally:
        release.set()
    await journal._writer.run(lambda: None)  # the commit lands (the thread runs in order)
    await journal.append([event(3)])  # and the journal takes writes again
    assert journal.ready
    assert not journal._timed, "requests answered are not kept for their deadline"
    journal.close()


async def test_answered_requests_are_not_kept_until_their_deadline(tmp_path) -> None:
    journal = Journal.open(tmp_path, commit_timeout=60)
    await asyncio.gather(*(journal.append([event(n)]) for n in range(50)))
    assert not journal._timed
    assert journal._timer is not None  # armed for the first deadline, not one per request
    journal.close()
    assert journal._timer is None
