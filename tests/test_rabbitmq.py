"""The hub against a real RabbitMQ node (started by the harness): topology, messages, outages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import orjson
import pytest

from core.models import CONTENT_TYPE, Envelope, Event
from hub.app import create_app
from sinks.rabbitmq import RabbitMQSink, StreamRetention, stream_name
from tests.support import (
    DLR,
    PAYLOADS,
    REPLY,
    SECRET,
    SEED_DLR,
    SEED_REPLY,
    dlr_query,
    event,
    eventually,
    get_raw,
    make_settings,
    metric,
)

pytestmark = pytest.mark.broker

DMC_SMS = (PAYLOADS / "dmc" / "seed-sms-sent.body").read_bytes()


async def drain(
    queue, expect: int, timeout: float = 30.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Waits until the queue has given ``expect`` messages, then takes what else is there."""
    got: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def enough() -> bool:
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            got.append(message)
        return len(got) >= expect

    await eventually(enough, timeout)
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        got.append(message)
    return got


@pytest.fixture
async def broker_hub(aiohttp_client, rabbit, channel, tmp_path: Path, exchange_name: str):
    # no stream: it is bound to everything, and these tests are about what nothing routes
    settings = make_settings(
        tmp_path / "data", rabbitmq_url=rabbit.url, exchange=exchange_name, stream=False
    )
    client = await aiohttp_client(create_app(settings))

    async def connected() -> bool:
        return metric(await (await client.get("/metrics")).text(), "hub_broker_connected") == 1

    await eventually(connected)
    return client


async def bound_queue(channel, exchange: str, pattern: str):
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, pattern)
    return queue


async def test_one_cloudevent_per_callback_on_a_bound_queue(broker_hub, channel, exchange_name):
    queue = await bound_queue(channel, exchange_name, "isendpro.#")
    other = await bound_queue(channel, exchange_name, "dmc.#")

    dlr = await get_raw(broker_hub, f"{DLR}?{SEED_DLR.decode()}")
    reply = await broker_hub.get(f"{REPLY}?{SEED_REPLY.decode()}")
    assert await dlr.read() == b"validation"
    assert await reply.read() == b"validation"

    messages = await drain(queue, 2)
    assert [m.routing_key for m in messages] == [
        "isendpro.sms.delivery.delivered",
        "isendpro.sms.inbound.received",
    ]
    for message in messages:
        event = Event.from_json(message.body)
        assert message.message_id == event.id
        assert message.content_type == CONTENT_TYPE
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.type == event.type
        doc = orjson.loads(message.body)
        assert doc["specversion"] == "1.0"
        assert doc["source"] == "/providers/isendpro"
    delivered = Event.from_json(messages[0].body)
    assert delivered.data.recipient == "+33612345678"
    assert delivered.data.reference == "compte12_5874"
    assert delivered.time.isoformat() == "2012-08-12T13:07:12+00:00"
    # Nothing of iSendPro's reached the DMC queue: a DMC callback sent after them is the first
    # thing there (events are forwarded in arrival order).
    dmc = await broker_hub.post(f"/callbacks/dmc/{SECRET}/cra", data=DMC_SMS)
    assert dmc.status == 200
    [marker] = await drain(other, 1)
    assert marker.routing_key.startswith("dmc.sms.")


async def test_a_retry_after_forwarding_gives_one_message(broker_hub, channel, exchange_name):
    queue = await bound_queue(channel, exchange_name, "#")
    assert await (await get_raw(broker_hub, f"{DLR}?{SEED_DLR.decode()}")).read() == b"validation"
    [first] = await drain(queue, 1)
    again = await get_raw(broker_hub, f"{DLR}?{SEED_DLR.decode()}")
    assert await again.read() == b"validation"
    # No second copy: a new callback sent after the retry is the next message (arrival order).
    marker = await get_raw(broker_hub, f"{DLR}?{dlr_query(8)}")
    assert await marker.read() == b"validation"
    [after] = await drain(queue, 1)
    assert Event.from_json(after.body).data.message_id == "8"
    text = await (await broker_hub.get("/metrics")).text()  # the worker is past the retry
    assert metric(text, "hub_callbacks_total", provider="isendpro", outcome="accepted") == 3
    assert metric(text, "hub_duplicate_events_total", provider="isendpro") == 1
    assert metric(text, "hub_forwarded_events_total", provider="isendpro") == 2
    assert first.message_id == Event.from_json(first.body).id


async def test_unrouted_events_are_kept_not_dropped(broker_hub, channel, exchange_name):
    unrouted = await channel.get_queue(f"{exchange_name}.unrouted")
    resp = await get_raw(broker_hub, f"{DLR}?{SEED_DLR.decode()}")
    assert await resp.read() == b"validation"
    [kept] = await drain(unrouted, 1)
    assert kept.routing_key == "isendpro.sms.delivery.delivered"


async def test_an_event_the_broker_returns_is_not_counted_and_waits(
    broker_hub, channel, exchange_name
):
    """Without even the unrouted queue the broker returns the message: it is not forwarded, it
    waits in the journal, and leaves once a queue can take it."""
    await channel.queue_delete(f"{exchange_name}.unrouted")
    resp = await get_raw(broker_hub, f"{DLR}?{SEED_DLR.decode()}")
    assert await resp.read() == b"validation"

    async def text() -> str:
        return await (await broker_hub.get("/metrics")).text()

    async def stuck() -> bool:
        return metric(await text(), "hub_journal_backlog_events") == 1

    await eventually(stuck)
    assert metric(await text(), "hub_forwarded_events_total", provider="isendpro") == 0

    queue = await bound_queue(channel, exchange_name, "#")
    [message] = await drain(queue, 1)
    assert message.routing_key == "isendpro.sms.delivery.delivered"
    assert metric(await text(), "hub_forwarded_events_total", provider="isendpro") == 1


async def test_broker_outage_keeps_acknowledging_then_drains_in_order(
    aiohttp_client, own_node, tmp_path: Path
):
    """A node of its own, stopped and started again: the hub keeps answering validation, the
    backlog waits in the journal, the connection comes back by itself and the backlog drains in
    arrival order, each event once."""
    node = own_node
    try:
        connection = await aio_pika.connect_robust(node.url)
        channel = await connection.channel()
        await channel.declare_exchange(
            "outage",
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": "outage.unrouted"},
        )
        queue = await channel.declare_queue("subscriber", durable=True)
        await queue.bind("outage", "#")
        await connection.close()

        settings = make_settings(tmp_path / "data", rabbitmq_url=node.url, exchange="outage")
        client = await aiohttp_client(create_app(settings))

        async def broker(up: float) -> bool:
            return metric(await (await client.get("/metrics")).text(), "hub_broker_connected") == up

        await eventually(lambda: broker(1))
        assert await (await client.get(f"{DLR}?{dlr_query(0)}")).read() == b"validation"

        async def forwarded() -> bool:
            text = await (await client.get("/metrics")).text()
            return metric(text, "hub_journal_backlog_events") == 0

        await eventually(forwarded)
        node.stop()
        for i in range(1, 21):
            assert await (await client.get(f"{DLR}?{dlr_query(i)}")).read() == b"validation"
        assert (await client.get("/health/ready")).status == 200
        text = await (await client.get("/metrics")).text()
        assert metric(text, "hub_broker_connected") == 0
        assert metric(text, "hub_journal_backlog_events") == 20

        node.start()
        await eventually(lambda: broker(1), timeout=60)
        connection = await aio_pika.connect(node.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue("subscriber")
            messages = await drain(queue, 21)
        ids = [Event.from_json(m.body).data.message_id for m in messages]
        assert ids == [str(i) for i in range(21)]
    finally:
        node.stop()


async def read_stream(url: str, exchange: str, expect: int, timeout: float = 15.0) -> list[str]:
    """The message ids in the stream from its start, once ``expect`` are read (or what was read
    when ``timeout`` is up: fewer than ``expect``)."""
    ids: list[str] = []
    enough = asyncio.Event()

    async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        ids.append(message.message_id or "")
        await message.ack()
        if len(ids) >= expect:
            enough.set()

    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        stream = await channel.get_queue(stream_name(exchange))
        await stream.consume(keep, arguments={"x-stream-offset": "first"})
        try:
            async with asyncio.timeout(timeout):
                await enough.wait()
        except TimeoutError:
            pass  # the comparison says what is missing
    return ids


async def test_after_a_broker_restart_the_stream_keeps_what_is_published_once_ready(own_node):
    """RabbitMQ 3.10 confirms the messages it routes to a stream in the second after a restart,
    before the stream's member is up, and does not keep them. The sink is not ready until the
    stream takes a consumer: what it publishes as soon as it is ready is in the stream."""
    node = own_node
    sink = RabbitMQSink(node.url, exchange="x", stream=StreamRetention())
    sink.start()
    try:
        async with asyncio.timeout(30):
            await sink.wait_connected()
        before, after = [event(n) for n in range(3)], [event(n) for n in range(3, 9)]
        await sink.publish([Envelope.of(e) for e in before])
        await asyncio.to_thread(node.restart)

        async def ready() -> bool:
            return sink.ready

        await eventually(ready, timeout=60)
        await sink.publish([Envelope.of(e) for e in after])  # as the forwarder does
        assert await read_stream(node.url, "x", 9) == [e.id for e in before + after]
    finally:
        await sink.close()
        node.stop()
