"""Two replicas (``tests.replicas``: ``hub serve`` A and B on one throwaway PostgreSQL and one
RabbitMQ) under faults, with callbacks streaming into both: the shared index stopped and
restarted, a replica SIGKILLed while it forwards and restarted on its data directory. Each
acknowledged callback reaches the exchange exactly once, in its replica's arrival order, and
is once not a duplicate in the shared index (``tests.replicas.check_once``).

Some callbacks are sent to both replicas (a provider's retry that the load balancer sends
elsewhere): one event all the same, whichever replica records it first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest

from tests.harness.hubproc import HubProcess
from tests.replicas import BATCH, Replicas, check_once, replicas_fixture  # noqa: F401 - the fixture
from tests.support import Results, acked, eventually, stream
from tests.test_durability import _gone, scrape

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)

A_IDS, B_IDS = range(0, 5_000), range(10_000, 15_000)
"""The callbacks streamed to A and to B: the most each stream sends (a test stops them before)."""
RETRIES = range(0, 5_000, 10)
"""A's callbacks sent again to B (a tenth of them)."""
AWAY = 600
"""Callbacks each replica acknowledges while the shared index is away (after both said so):
some 10 s at the streams' pace."""
INDEX_TIMEOUT = 10.0
"""HUB_INDEX_TIMEOUT's default: a batch waits that long at most for a connection, and the next
one tries a fresh one. The database back, both replicas reach it again within twice that: the
pool's attempt after a back-off step (its steps end within the timeout), then the batch, the
worker's progress file and the scrape that reads the gauge (seen: 5.4 to 10.2 s; before the
pool's reconnection was bounded, 23 s after a 19 s outage, and minutes after longer ones)."""


async def forwarded_by(hub: HubProcess) -> float:
    return await scrape(hub, "hub_forwarded_events_total", provider="isendpro") or 0


async def forwarding(pair: Replicas, at_least: float) -> None:
    """Until both replicas have forwarded ``at_least`` events each."""

    async def both() -> bool:
        return min([await forwarded_by(hub) for hub in pair.both]) >= at_least

    await eventually(both, 60)


def merged(*results: Results) -> set[int]:
    return set().union(*(r.acked for r in results))


async def test_shared_index_stopped_under_load_and_restarted(replicas: Replicas) -> None:
    """PostgreSQL stops while callbacks stream into both replicas, stays away for a while,
    then comes back: the hubs kept acknowledging (the events waited in their journals,
    ``hub_shared_index_connected`` said 0 on both), then caught up by themselves, and every
    acknowledged callback is on the exchange exactly once, in order."""
    a, b, retried = Results(), Results(), Results()
    done = asyncio.Event()
    async with asyncio.timeout(240):
        streams = [
            asyncio.create_task(
                stream(replicas.a.url, A_IDS, a, in_flight=4, pace=0.05, stop=done)
            ),
            asyncio.create_task(
                stream(replicas.b.url, B_IDS, b, in_flight=4, pace=0.05, stop=done)
            ),
            asyncio.create_task(
                stream(replicas.b.url, RETRIES, retried, in_flight=1, pace=0.3, stop=done)
            ),
        ]
        await acked(a, 100, streams[0])
        await forwarding(replicas, 50)
        assert await replicas.gauges("hub_shared_index_connected") == [1, 1]

        await asyncio.to_thread(replicas.postgres.stop)
        stopped = time.monotonic()
        try:
            await replicas.until("hub_shared_index_connected", 0)
            said = time.monotonic() - stopped
            # still acknowledging: AWAY more on each while it is away, none of them forwarded
            before = [len(a.acked), len(b.acked)]
            forwarded = await replicas.total("hub_forwarded_events_total", provider="isendpro")
            await acked(a, before[0] + AWAY, streams[0])
            await acked(b, before[1] + AWAY, streams[1])
            assert not streams[0].done() and not streams[1].done(), "streams long enough"
            backlogs = await replicas.gauges("hub_journal_backlog_events")
            assert all(n is not None and n >= AWAY for n in backlogs), backlogs
            assert forwarded == await replicas.total(
                "hub_forwarded_events_total", provider="isendpro"
            )
        finally:
            await asyncio.to_thread(replicas.postgres.start)
        outage = time.monotonic() - stopped

        await replicas.until("hub_shared_index_connected", 1)
        back = time.monotonic()
        await acked(a, len(a.acked) + 50, streams[0])  # the load goes on while they catch up
        done.set()
        results = await asyncio.gather(*streams)
        await replicas.caught_up()
        await replicas.stop()
        copies = await replicas.on_exchange()
    log.info(
        "outage %.1f s (gauge 0 after %.1f s, 1 again %.1f s after the restart); acked %d + %d"
        " (+%d retries); backlogs while away %s",
        outage,
        said,
        back - stopped - outage,
        len(a.acked),
        len(b.acked),
        len(retried.acked),
        backlogs,
    )
    assert back - stopped - outage < 2 * INDEX_TIMEOUT, "reached again long after the restart"
    assert not any(r.refused or r.failed for r in results), [r.refused for r in results]
    sent = set(A_IDS) | set(B_IDS)
    check_once(replicas, merged(a, b, retried), copies, sent)


async def test_replica_killed_mid_stream_and_restarted(replicas: Replicas) -> None:
    """SIGKILL of replica A (the hub and its forwarder: a crash of its machine) while it
    forwards, callbacks streaming into both; the provider's retries of what A left unanswered
    go to B, which publishes more than 3 batches before A restarts on the same data
    directory: 0 lost, 0 copies on the exchange (with the stream, the default: A's forwarder
    reads what it took since its last confirm before sending what it had in flight), and each
    event once not a duplicate in the shared index."""
    a, b = Results(), Results()
    done = asyncio.Event()
    async with asyncio.timeout(180):
        to_a = asyncio.create_task(stream(replicas.a.url, A_IDS, a, in_flight=16, pace=0.05))
        to_b = asyncio.create_task(
            stream(replicas.b.url, B_IDS, b, in_flight=4, pace=0.05, stop=done)
        )
        await acked(a, 150, to_a)
        await forwarding(replicas, 1)
        [forwarder] = replicas.a.children()
        os.kill(forwarder, signal.SIGKILL)
        assert await asyncio.to_thread(replicas.a.kill) == -9
        killed = time.monotonic()
        b_at_kill = await forwarded_by(replicas.b)
        await to_a
        assert a.failed, "the kill came in the middle of A's stream"
        await eventually(lambda: _gone(forwarder), 20)
        # the provider sends again what got no answer; the load balancer sends it to B
        retried = await stream(replicas.b.url, sorted(a.failed), Results(), in_flight=8)
        assert retried.acked == a.failed.keys()

        async def b_went_on() -> bool:  # beyond what A would read back by offsets (2 batches)
            return await forwarded_by(replicas.b) - b_at_kill > 3 * BATCH

        await eventually(b_went_on, 30)
        await asyncio.to_thread(replicas.a.start)
        await replicas.connected()
        down = time.monotonic() - killed
        b_meanwhile = await forwarded_by(replicas.b) - b_at_kill
        after = await stream(replicas.a.url, range(20_000, 20_100), Results(), in_flight=8)
        assert after.acked == set(range(20_000, 20_100))
        done.set()
        await to_b
        await replicas.caught_up()
        await replicas.stop()
        copies = await replicas.on_exchange()
    found = [line for line in replicas.a.log_file.read_text().splitlines() if "already" in line]
    log.info(
        "A down %.1f s (B published %d meanwhile); acked %d by A before the kill, %d after;"
        " %d by B (+%d retries); %s",
        down,
        b_meanwhile,
        len(a.acked),
        len(after.acked),
        len(b.acked),
        len(retried.acked),
        found,
    )
    assert not a.refused and not b.refused and not b.failed
    sent = set(A_IDS) | set(B_IDS) | set(range(20_000, 20_100))
    check_once(replicas, merged(a, b, retried, after), copies, sent)
