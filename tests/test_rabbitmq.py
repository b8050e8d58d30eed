"""The hub against a real RabbitMQ node (started by the harness): topology, messages, outages."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aio_pika
import orjson
import pytest

from hub.app import create_app
from hub.models import CONTENT_TYPE, Event
from hub.settings import Settings
from tests.conftest import SEED_DLR, SEED_REPLY
from tests.harness.rabbitmq import RabbitNode, broker_required

pytestmark = pytest.mark.broker

DLR = "/callbacks/isendpro/delivery"
REPLY = "/callbacks/isendpro/reply"


async def wait_ready(client, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while (await client.get("/health/ready")).status != 200:
            await asyncio.sleep(0.1)


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message in the queue now, acknowledged."""
    got = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        got.append(message)
    return got


@pytest.fixture
def exchange_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def broker_hub(aiohttp_client, rabbit, tmp_path: Path, exchange_name: str):
    settings = Settings(data_dir=tmp_path / "data", rabbitmq_url=rabbit.url, exchange=exchange_name)
    client = await aiohttp_client(create_app(settings))
    await wait_ready(client)
    return client


@pytest.fixture
async def channel(rabbit):
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        yield await connection.channel()


async def bound_queue(channel, exchange: str, pattern: str) -> aio_pika.abc.AbstractQueue:
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, pattern)
    return queue


async def test_one_cloudevent_per_callback_on_a_bound_queue(broker_hub, channel, exchange_name):
    queue = await bound_queue(channel, exchange_name, "isendpro.#")
    other = await bound_queue(channel, exchange_name, "dmc.#")

    dlr = await broker_hub.get(f"{DLR}?{SEED_DLR.decode()}")
    reply = await broker_hub.get(f"{REPLY}?{SEED_REPLY.decode()}")
    assert await dlr.read() == b"validation"
    assert await reply.read() == b"validation"

    messages = await drain(queue)
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
    assert await drain(other) == []


async def test_unrouted_events_are_kept_not_dropped(broker_hub, channel, exchange_name):
    unrouted = await channel.get_queue(f"{exchange_name}.unrouted")
    resp = await broker_hub.get(f"{DLR}?{SEED_DLR.decode()}")
    assert await resp.read() == b"validation"
    [kept] = await drain(unrouted)
    assert kept.routing_key == "isendpro.sms.delivery.delivered"


async def test_event_the_broker_returns_is_not_acknowledged(broker_hub, channel, exchange_name):
    """Without even the unrouted queue, the broker returns the message: the provider must retry."""
    await channel.queue_delete(f"{exchange_name}.unrouted")
    resp = await broker_hub.get(f"{DLR}?{SEED_DLR.decode()}")
    assert await resp.read() == b"probleme"
    metrics = await (await broker_hub.get("/metrics")).text()
    assert 'outcome="unavailable",provider="isendpro",reason="unroutable"} 1.0' in metrics
    assert "hub_events_total{" not in metrics


async def test_broker_outage_gives_probleme_then_recovers(aiohttp_client, tmp_path: Path):
    """A node of its own, stopped and started again: the hub answers probleme meanwhile, counts
    nothing as delivered, and reconnects by itself."""
    node = RabbitNode(tmp_path / "node")
    try:
        node.start()
    except RuntimeError as exc:
        node.stop()
        if broker_required():
            pytest.fail(f"RabbitMQ could not start: {exc}")
        pytest.skip(f"RabbitMQ could not start: {exc}")
    try:
        settings = Settings(data_dir=tmp_path / "data", rabbitmq_url=node.url, exchange="outage")
        client = await aiohttp_client(create_app(settings))
        await wait_ready(client)

        node.stop()
        resp = await client.get(f"{DLR}?{SEED_DLR.decode()}")
        assert await resp.read() == b"probleme"
        assert (await client.get("/health/ready")).status == 503

        node.start()
        await wait_ready(client, timeout=60)
        resp = await client.get(f"{REPLY}?{SEED_REPLY.decode()}")
        assert await resp.read() == b"validation"

        connection = await aio_pika.connect(node.url)
        async with connection:
            channel = await connection.channel()
            unrouted = await channel.get_queue("outage.unrouted")
            kept = await drain(unrouted)
        assert [m.routing_key for m in kept] == ["isendpro.sms.inbound.received"]
        metrics = await (await client.get("/metrics")).text()
        assert (
            'outcome="unavailable",provider="isendpro",reason="broker_unavailable"} 1.0' in metrics
        )
        assert (
            'hub_events_total{channel="sms",kind="delivery",provider="isendpro",state="delivered"}'
            not in metrics
        )
    finally:
        node.stop()
