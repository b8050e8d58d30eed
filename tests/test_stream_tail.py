"""Reading the stream's tail on a real broker (``sinks.stream``, the sink's ``already_published``):
what the forwarder learns, after a crash or a lost connection, of what reached the exchange.
Bounded in size (a window of offsets, never the whole stream) and in time (a stalled broker)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest

from core.models import Envelope
from sinks import stream as stream_reading
from sinks.rabbitmq import RabbitMQSink, StreamRetention, stream_name
from tests.support import event

pytestmark = pytest.mark.broker


def envelopes(first: int, count: int) -> list[Envelope]:
    return [Envelope.of(event(n)) for n in range(first, first + count)]


async def started(sink: RabbitMQSink) -> RabbitMQSink:
    sink.start()
    async with asyncio.timeout(30):
        await sink.wait_connected()
    return sink


@pytest.fixture
async def sink(rabbit, exchange_name) -> AsyncIterator[RabbitMQSink]:
    """A sink with the stream on, reading back 20 offsets."""
    made = RabbitMQSink(rabbit.url, exchange=exchange_name, stream=StreamRetention(), lookback=20)
    try:
        yield await started(made)
    finally:
        await made.close()


async def publish_in_batches(sink: RabbitMQSink, sent: list[Envelope], batch: int) -> None:
    """Each batch confirmed before the next: the stream writes them in chunks of their own."""
    for i in range(0, len(sent), batch):
        await sink.publish(sent[i : i + batch])


async def test_tail_ids_reads_a_bounded_window_at_the_end(sink, rabbit, exchange_name) -> None:
    sent = envelopes(1, 200)
    await publish_in_batches(sink, sent, 10)
    async with (
        await aio_pika.connect(rabbit.url) as connection,
        stream_reading.opened(connection, stream_name(exchange_name)) as stream,
    ):
        assert stream is not None
        seen = await stream_reading.tail_ids(stream, 10)
    assert {e.id for e in sent[-10:]} <= seen, "the last 10 offsets are read"
    assert not seen & {e.id for e in sent[:100]}, "the window is bounded: not the whole stream"


async def test_an_empty_stream_has_no_tail(sink, rabbit, exchange_name) -> None:
    async with await aio_pika.connect(rabbit.url) as connection:
        async with stream_reading.opened(connection, stream_name(exchange_name)) as stream:
            assert stream is not None
            assert await stream_reading.tail_ids(stream, 10, first_wait=0.5) == set()
            assert await stream_reading.last_offset(stream, first_wait=0.5) is None
        async with stream_reading.opened(connection, "no-such-stream") as missing:
            assert missing is None


async def test_already_published_names_what_is_on_the_exchange(sink) -> None:
    """The forwarder's batch in flight: 5 were published (their confirms may have been lost),
    3 were not. Only the 5 are named; a sink asked about nothing reads nothing."""
    await sink.publish(envelopes(1, 15))
    in_flight = envelopes(11, 8)
    assert await sink.already_published(in_flight) == {e.id for e in in_flight[:5]}
    assert await sink.already_published([]) == set()


async def test_it_reads_back_at_least_as_far_as_it_is_asked(sink) -> None:
    """40 events in flight, lookback 20: the window grows to the 40 asked about."""
    sent = envelopes(1, 40)
    await publish_in_batches(sink, sent, 4)
    assert await sink.already_published(sent) == {e.id for e in sent}


async def test_since_the_last_confirm_it_reads_past_what_other_hubs_wrote_after(sink) -> None:
    """The batch in flight (5 events), then 100 of another hub on the same exchange (5 times the
    lookback of 20): by offsets alone the 5 are out of the window; asked with the time of the
    forwarder's last confirm, the sink finds them."""
    confirmed_at = time.time()
    in_flight = envelopes(1, 5)
    await sink.publish(in_flight)
    await publish_in_batches(sink, envelopes(100, 100), 10)
    assert await sink.already_published(in_flight) == set()
    found = await sink.already_published(in_flight, since=confirmed_at)
    assert found == {e.id for e in in_flight}


async def test_a_stream_quiet_since_then_is_read_at_once(sink, rabbit, exchange_name) -> None:
    """Nothing taken in the interval asked about: an empty answer at once (not a wait for the
    next message, nor a stall)."""
    await sink.publish(envelopes(1, 3))
    published = time.monotonic()
    async with (
        await aio_pika.connect(rabbit.url) as connection,
        stream_reading.opened(connection, stream_name(exchange_name)) as stream,
    ):
        assert stream is not None
        await asyncio.sleep(3)  # the interval's length, past: not a wait for a condition
        started_at = time.monotonic()
        assert await stream_reading.ids_since(stream, time.monotonic() - published - 1.5) == set()
        assert time.monotonic() - started_at < stream_reading.STALL
        assert len(await stream_reading.ids_since(stream, 60)) == 3


async def test_without_a_stream_nothing_is_read(rabbit, exchange_name) -> None:
    """HUB_STREAM=false: no stream to ask, an empty answer (the batch is sent again: at most one
    batch of copies, as documented)."""
    plain = await started(RabbitMQSink(rabbit.url, exchange=exchange_name))
    try:
        sent = envelopes(1, 3)
        await plain.publish(sent)
        assert await plain.already_published(sent) == set()
    finally:
        await plain.close()


async def test_a_stream_deleted_by_an_operator_is_said_once_and_blocks_nothing(
    sink, channel, exchange_name, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="sinks.rabbitmq")
    sent = envelopes(1, 3)
    await sink.publish(sent)
    await channel.queue_delete(stream_name(exchange_name))
    assert await sink.already_published(sent) is None
    assert await sink.already_published(sent) is None
    gone = [r for r in caplog.records if "not found" in r.getMessage()]
    assert len(gone) == 1, "said once"
    await sink.publish(envelopes(4, 3))  # the unrouted queue takes them now


async def test_a_stalled_broker_gives_no_answer_within_the_bound(own_node, caplog) -> None:
    """The broker's VM stopped (SIGSTOP) while the sink is connected: ``already_published``
    gives up after ``check_timeout`` (None: the forwarder publishes, accepting copies), and
    answers again once the broker does."""
    caplog.set_level(logging.WARNING, logger="sinks.rabbitmq")
    stalled = RabbitMQSink(
        own_node.url, exchange="x", stream=StreamRetention(), lookback=10, check_timeout=2.0
    )
    await started(stalled)
    beam = own_node.beam_pid()
    assert beam is not None
    try:
        sent = envelopes(1, 5)
        await stalled.publish(sent)
        os.kill(beam, signal.SIGSTOP)
        try:
            async with asyncio.timeout(20):  # check_timeout, and the bounded cleanup after it
                assert await stalled.already_published(sent) is None
        finally:
            os.kill(beam, signal.SIGCONT)
        assert any("not read within 2 s" in r.getMessage() for r in caplog.records)
        async with asyncio.timeout(30):
            assert await stalled.already_published(sent) == {e.id for e in sent}
    finally:
        await stalled.close()
