"""Subscribing (hub.subscribe): patterns, durable subscriptions, the stream, ``hub subscribe``.

Broker tests send callbacks through a real hub app (or publish with RabbitMQSink) to an exchange
of their own, declared with its stream first, and read with :class:`Subscription`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import msgspec
import orjson
import pytest
from yarl import URL

from core.models import Channel, Code, Envelope, Event, EventData, Failure, Kind, Provider, State
from core.topics import matches
from hub.app import create_app
from hub.subscribe import Delivery, Subscription, parse_from
from sinks.rabbitmq import RabbitMQSink, StreamRetention, declare_topology, stream_name
from tests.golden import PAYLOADS, all_cases
from tests.support import (
    DLR,
    REPLY,
    SECRET,
    dlr_query,
    event,
    eventually,
    make_settings,
    metric,
)

ROOT = Path(__file__).parent.parent
broker = pytest.mark.broker

# -- without a broker --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "isendpro.sms.delivery.failed", True),
        ("isendpro.#", "isendpro.sms.delivery.failed", True),
        ("isendpro.#", "dmc.sms.delivery.failed", False),
        ("*.*.delivery.failed", "dmc.voice.delivery.failed", True),
        ("*.*.delivery.failed", "dmc.voice.delivery.delivered", False),
        ("*.*.inbound.#", "smsmode.sms.inbound.received", True),
        ("*.*.inbound.#", "smsmode.sms.delivery.received", False),
        ("*.failed", "isendpro.sms.delivery.failed", False),
        ("#.failed", "isendpro.sms.delivery.failed", True),
        ("isendpro.#.failed", "isendpro.failed", True),
        ("isendpro.sms.delivery.failed.#", "isendpro.sms.delivery.failed", True),
        ("*.*.*.*", "isendpro.sms.delivery", False),
    ],
)
def test_topic_matching_is_the_brokers(pattern: str, key: str, expected: bool) -> None:
    assert matches(pattern, key) is expected


def test_from_reads_names_offsets_times_and_durations() -> None:
    assert parse_from("first") == parse_from("beginning") == "first"
    assert parse_from("42") == 42
    assert parse_from("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    before = datetime.now(UTC)
    when = parse_from("2h")
    after = datetime.now(UTC)
    assert isinstance(when, datetime)
    assert before - timedelta(hours=2) <= when <= after - timedelta(hours=2)
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_from("yesterday")


def test_a_subscription_reads_a_queue_or_the_stream_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        Subscription("amqp://127.0.0.1/", queue="mine", from_="first")
    with pytest.raises(ValueError, match="not a routing pattern"):
        Subscription("amqp://127.0.0.1/", "isendpro..failed")


class _Message:
    """The little of an incoming message ``Subscription._accept`` reads (a unit test's stand-in)."""

    def __init__(self, body: bytes) -> None:
        self.body, self.message_id, self.routing_key = body, "m-1", "isendpro.sms.delivery.failed"
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def reject(self) -> None:
        self.settled.append("reject")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"specversion": "1.0"}',
        b'{"id": 5, "data": {"recipient": "+33612345678"}}',
        b'{"specversion": "+33612345678"}',
        b'{"+33612345678": 1}',
    ],
    ids=["not-json", "missing-fields", "wrong-types", "wrong-value", "unknown-field"],
)
async def test_a_message_that_is_not_a_hub_event_is_rejected_with_one_line(body, caplog) -> None:
    subscription = Subscription("amqp://127.0.0.1/", "#", queue="mine")
    message = _Message(body)
    assert await subscription._accept(message) is None  # type: ignore[arg-type]
    assert message.settled == ["reject"]  # to the dead-letter queue, not back to this one
    [record] = [r for r in caplog.records if "not a hub event" in r.getMessage()]
    assert "m-1" in record.getMessage()
    assert "+33612345678" not in record.getMessage()


# -- with a broker -----------------------------------------------------------------------------


@pytest.fixture
async def topology(channel, exchange_name: str, tmp_path: Path) -> None:
    """The exchange and its stream, with the hub's retention settings."""
    settings = make_settings(tmp_path)
    retention = StreamRetention(settings.stream_max_age, settings.stream_max_bytes)
    await declare_topology(channel, exchange_name, stream=retention)


@pytest.fixture
async def hub(aiohttp_client, rabbit, topology, tmp_path: Path, exchange_name: str):
    settings = make_settings(tmp_path / "data", rabbitmq_url=rabbit.url, exchange=exchange_name)
    client = await aiohttp_client(create_app(settings))

    async def connected() -> bool:
        return metric(await (await client.get("/metrics")).text(), "hub_broker_connected") == 1

    await eventually(connected)
    return client


@pytest.fixture
async def sink(rabbit, topology, exchange_name: str):
    sink = RabbitMQSink(rabbit.url, exchange=exchange_name)
    sink.start()
    try:
        async with asyncio.timeout(30):
            await sink.wait_connected()
        yield sink
    finally:
        await sink.close()


async def send(client, method: str, path: str, *, query: bytes = b"", body: bytes = b"", ct=""):
    """A callback with its query string byte for byte; returns the reply's status."""
    url = URL(path + ("?" + query.decode("latin-1") if query else ""), encoded=True)
    headers = {"Content-Type": ct} if ct else {}
    resp = await client.request(method, url, data=body or None, headers=headers)
    await resp.read()
    return resp.status


async def take(
    subscription: Subscription, count: int, *, ack: bool = True, timeout: float = 30
) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(timeout):
        async for delivery in subscription:
            got.append(delivery)
            if ack:
                await delivery.ack()
            if len(got) == count:
                return got
    return got


async def publish(sink: RabbitMQSink, events: list[Event]) -> None:
    await sink.publish([Envelope.of(e) for e in events])


SENTINEL_DMC = (
    (PAYLOADS / "dmc/seed-call-ended.body")
    .read_bytes()
    .replace(b'call_id="30020008248120"', b'call_id="39999999999999"')
)
PATTERNS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "*.*.delivery.failed": lambda d: d["kind"] == "delivery" and d["state"] == "failed",
    "*.*.inbound.#": lambda d: d["kind"] == "inbound",
    "dmc.#": lambda d: d["provider"] == "dmc",
}


@broker
async def test_a_pattern_subscription_gets_exactly_the_matching_events_of_a_mixed_batch(
    hub, rabbit, exchange_name
) -> None:
    cases = all_cases()
    golden = {e["id"]: e["data"] for c in cases for e in c.spec.get("events", [])}
    assert {d["provider"] for d in golden.values()} == {
        "ecampaign",
        "dmc",
        "isendpro",
        "ecall",
        "smsmode",
    }
    subscriptions = {p: Subscription(rabbit.url, p, exchange=exchange_name) for p in PATTERNS}
    everything = Subscription(rabbit.url, "#", exchange=exchange_name)
    for s in [*subscriptions.values(), everything]:
        await s.open()
    try:
        for case in cases:
            path = f"/callbacks/{case.provider.value}/{SECRET}/{case.spec['callback']}"
            status = await send(
                hub,
                case.spec.get("method", "GET"),
                path,
                ct=case.spec.get("content_type", ""),
                **{case.input_kind: case.input},
            )
            assert status == case.spec["reply"]["status"], case.id
        # last, one event for each pattern: once it is there, everything before it is too
        assert await send(hub, "GET", DLR, query=dlr_query(999001, statut="2").encode()) == 200
        reply = b"tel=0612345678&id_retour=999002&msg_sms=last&tracker=t"
        assert await send(hub, "GET", REPLY, query=reply) == 200
        dmc = f"/callbacks/dmc/{SECRET}/cra"
        assert await send(hub, "POST", dmc, body=SENTINEL_DMC, ct="text/xml") == 200

        published = await take(everything, len(golden) + 3)
        sentinels = {d.event.id for d in published[-3:]}
        assert {d.event.id for d in published[:-3]} == set(golden)
        assert {d.event.data.message_id or d.event.data.related_message_id for d in published[-3:]} == {
            "999001", "999002", "39999999999999",
        }  # fmt: skip
        for pattern, wanted in PATTERNS.items():
            expected = [d.event.id for d in published if wanted(msgspec.to_builtins(d.event.data))]
            assert {i for i in expected if i not in sentinels} == {
                i for i, d in golden.items() if wanted(d)
            }
            assert expected[-1] in sentinels, pattern
            got = await take(subscriptions[pattern], len(expected))
            assert [d.event.id for d in got] == expected, pattern
            assert all(matches(pattern, d.routing_key) for d in got)
    finally:
        for s in [*subscriptions.values(), everything]:
            await s.close()


@broker
async def test_a_durable_subscription_keeps_what_happened_meanwhile_and_dead_letters_rejects(
    sink, rabbit, channel, exchange_name
) -> None:
    name = f"{exchange_name}.billing"
    first, *meanwhile = [event(n, statut="2") for n in range(4)]
    pattern = "*.*.delivery.failed"
    async with Subscription(rabbit.url, pattern, exchange=exchange_name, queue=name) as online:
        await publish(sink, [first])
        assert [d.event for d in await take(online, 1)] == [first]
    await publish(sink, [meanwhile[0], event(10), *meanwhile[1:]])  # event(10): not a failure
    async with Subscription(rabbit.url, pattern, exchange=exchange_name, queue=name) as back:
        kept, rejected, last = await take(back, 3, ack=False)
        assert [d.event for d in (kept, rejected, last)] == meanwhile
        await kept.ack()
        await rejected.reject()
        await last.ack()
    dead = await channel.get_queue(f"{name}.dead")
    got: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def dead_lettered() -> bool:
        if (message := await dead.get(no_ack=True, fail=False)) is not None:
            got.append(message)
        return bool(got)

    await eventually(dead_lettered)
    [message] = got
    assert Event.from_json(message.body) == rejected.event
    assert message.message_id == rejected.event.id
    assert message.routing_key == f"{name}.dead"
    assert message.headers["x-death"][0]["reason"] == "rejected"
    assert message.headers["x-death"][0]["routing-keys"] == [rejected.routing_key]
    assert await dead.get(no_ack=True, fail=False) is None
    assert (await channel.get_queue(name)).declaration_result.message_count == 0


@broker
async def test_a_requeued_event_comes_back_and_a_retry_is_skipped(sink, rabbit, exchange_name):
    one, two = event(1), event(2)
    queue = f"{exchange_name}.q"
    async with Subscription(rabbit.url, exchange=exchange_name, queue=queue) as subscription:
        await publish(sink, [one])
        [first] = await take(subscription, 1, ack=False)
        await first.reject(requeue=True)
        [again] = await take(subscription, 1)
        await publish(sink, [one, two])  # the same event again: a provider's retry, say
        [second] = await take(subscription, 1)
    assert (first.event, again.event, second.event) == (one, one, two)
    assert again.redelivered and not first.redelivered


@broker
async def test_reading_the_stream_from_the_beginning_returns_history_in_order(
    sink, rabbit, exchange_name
) -> None:
    history = [event(n, statut="2" if n % 3 == 0 else "0") for n in range(12)]
    await publish(sink, history[:6])
    await publish(sink, history[6:])
    async with Subscription(rabbit.url, exchange=exchange_name, from_="first") as everything:
        got = await take(everything, 12)
    assert [d.event for d in got] == history
    assert [d.offset for d in got] == list(range(12))
    failed = [e for e in history if e.data.state == "failed"]
    async with Subscription(
        rabbit.url, "*.*.delivery.failed", exchange=exchange_name, from_="first"
    ) as failures:
        got = await take(failures, len(failed))
    assert [d.event for d in got] == failed
    assert [d.offset for d in got] == [0, 3, 6, 9]


@broker
async def test_reading_the_stream_from_a_time_starts_at_that_time(sink, rabbit, exchange_name):
    before, after = [event(n) for n in range(3)], [event(n) for n in range(3, 6)]
    await publish(sink, before)
    since = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)

    async def next_second() -> bool:  # the broker keeps times to the second
        return datetime.now(UTC) >= since

    await eventually(next_second)
    await publish(sink, after)
    async with Subscription(rabbit.url, exchange=exchange_name, from_=since) as subscription:
        got = await take(subscription, 3)
    assert [d.event for d in got] == after
    assert got[0].offset == 3


@broker
async def test_the_stream_must_exist(rabbit, channel) -> None:
    from hub.subscribe import SubscribeError

    exchange = f"nostream-{uuid.uuid4().hex[:8]}"
    await declare_topology(channel, exchange)
    with pytest.raises(SubscribeError, match=f"no stream {stream_name(exchange)}"):
        async with Subscription(rabbit.url, exchange=exchange, from_="first"):
            pass


# -- hub subscribe -----------------------------------------------------------------------------


def hub_subscribe(rabbit, exchange: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange}
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "subscribe", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


@broker
async def test_hub_subscribe_prints_events_and_leaves_no_queue_on_ctrl_c(
    sink, rabbit, exchange_name
) -> None:
    process = hub_subscribe(rabbit, exchange_name, "*.*.delivery.failed")
    try:
        assert process.stderr is not None and process.stdout is not None
        banner = (await asyncio.to_thread(process.stderr.readline)).decode()
        assert banner.startswith("subscribed to *.*.delivery.failed"), banner
        queue = banner.split("(")[1].split(")")[0]
        assert queue in await queues(rabbit)
        await publish(sink, [event(1), event(2, statut="2")])
        line = (await asyncio.to_thread(process.stdout.readline)).decode()
        assert "isendpro.sms.delivery.failed" in line and " 2 " in line, line
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        stop(process)
    assert process.returncode == 0
    assert b"Traceback" not in err and out == b""

    async def gone() -> bool:
        return queue not in await queues(rabbit)

    await eventually(gone)


async def queues(rabbit) -> list[str]:
    listing = await asyncio.to_thread(rabbit.rabbitmqctl, "list_queues", "name", "--quiet")
    return listing.split()


@broker
async def test_hub_subscribe_from_the_beginning_as_json(sink, rabbit, exchange_name) -> None:
    history = [event(n) for n in range(3)]
    await publish(sink, history)
    process = hub_subscribe(rabbit, exchange_name, "--from", "first", "--count", "3", "--json")
    try:
        out, err = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        stop(process)
    assert process.returncode == 0, err
    assert [orjson.loads(line) for line in out.splitlines()] == [
        orjson.loads(e.to_json()) for e in history
    ]


def python(code: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE)


@broker
async def test_the_python_example_of_the_docs_runs(sink, rabbit, exchange_name) -> None:
    doc = (ROOT / "docs/subscribe.md").read_text()
    example = doc.split("```python\n")[1].split("```")[0]
    env = {**os.environ, "HUB_RABBITMQ_URL": rabbit.url, "HUB_EXCHANGE": exchange_name}
    process = python(example, env)
    try:

        async def subscribed() -> bool:
            async with await aio_pika.connect(rabbit.url) as connection:
                try:
                    queue = await (await connection.channel()).get_queue("billing-failures")
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    return False
            return queue.declaration_result.consumer_count == 1  # bound, then consuming

        await eventually(subscribed)
        data = EventData(
            provider=Provider.ISENDPRO,
            channel=Channel.SMS,
            kind=Kind.DELIVERY,
            state=State.FAILED,
            final=True,
            failure=Failure.PERMANENT,
            error=Code(code="12", meaning="Unknown number"),
            recipient="+33612345678",
            raw={"id": "docs"},
            received_at=datetime.now(UTC),
        )
        await publish(sink, [event(1, statut="2"), Event.of(data)])
        assert process.stdout is not None
        first = await asyncio.to_thread(process.stdout.readline)
        second = await asyncio.to_thread(process.stdout.readline)
    finally:
        stop(process)
    assert first == b"None None \n"
    assert second == b"+33612345678 permanent Unknown number\n"


@broker
async def test_a_subscription_whose_channel_is_gone_reads_on_a_new_one(
    sink, rabbit, exchange_name
) -> None:
    """A channel closed under the subscription (the broker closes channels too): the one loop
    connects again and goes on; an event held from the dead channel is settled without error
    and given again by the broker, then skipped."""
    name = f"{exchange_name}.orphaned"
    before, again, after = event(1), event(2), event(3)
    async with Subscription(rabbit.url, exchange=exchange_name, queue=name) as subscription:
        await publish(sink, [before])
        assert [d.event for d in await take(subscription, 1)] == [before]
        first = subscription._channel
        assert first is not None
        await publish(sink, [again])
        [held] = await take(subscription, 1, ack=False)
        assert held.event == again and subscription._channel is first
        await first.close()
        await held.ack()  # its channel is gone: no error (the broker gives it again, skipped)
        await publish(sink, [after])
        assert [d.event for d in await take(subscription, 1, timeout=15)] == [after]
        assert subscription._channel is not None and subscription._channel is not first
        assert not subscription._channel.is_closed


@broker
async def test_subscriptions_carry_on_after_a_broker_restart(own_node, tmp_path: Path) -> None:
    """A node of its own: a durable subscription loses nothing, the stream's reads on from
    where it was; each event is yielded once."""
    node = own_node
    try:
        async with await aio_pika.connect(node.url) as connection:
            await declare_topology(await connection.channel(), "x", stream=StreamRetention())
        before, after = [event(n) for n in range(3)], [event(n) for n in range(3, 6)]
        durable = Subscription(node.url, exchange="x", queue="kept")
        stream = Subscription(node.url, exchange="x", from_="first")
        async with durable, stream:
            sink = RabbitMQSink(node.url, exchange="x", stream=StreamRetention())
            sink.start()
            try:
                async with asyncio.timeout(30):
                    await sink.wait_connected()
                await publish(sink, before)
                assert [d.event for d in await take(durable, 3)] == before
                assert [d.event for d in await take(stream, 3)] == before
                await asyncio.to_thread(node.restart)

                async def ready() -> bool:
                    return sink.ready

                await eventually(ready, timeout=60)
                await publish(sink, after)
                # a quorum queue elects its leader again after the restart: give it time
                assert [d.event for d in await take(durable, 3, timeout=90)] == after
                assert [d.event for d in await take(stream, 3, timeout=90)] == after
            finally:
                await sink.close()
    finally:
        node.stop()


@broker
async def test_hub_subscribe_reads_on_through_a_broker_restart(own_node) -> None:
    """The command, in its own process, on the stream from its start: the broker restarts
    under it; it prints every event once, before and after, and ends on Ctrl-C with no
    traceback."""
    node = own_node
    try:
        async with await aio_pika.connect(node.url) as connection:
            await declare_topology(await connection.channel(), "x", stream=StreamRetention())
        sink = RabbitMQSink(node.url, exchange="x", stream=StreamRetention())
        sink.start()
        process = hub_subscribe(node, "x", "--from", "first", "--json")
        try:
            assert process.stdout is not None and process.stderr is not None
            banner = await asyncio.to_thread(process.stderr.readline)
            assert banner.startswith(b"subscribed to #"), banner
            async with asyncio.timeout(30):
                await sink.wait_connected()
            before, after = [event(n) for n in range(3)], [event(n) for n in range(3, 6)]
            await publish(sink, before)
            async with asyncio.timeout(30):
                lines = [await asyncio.to_thread(process.stdout.readline) for _ in before]
            await asyncio.to_thread(node.restart)

            async def ready() -> bool:
                return sink.ready

            await eventually(ready, timeout=60)
            await publish(sink, after)
            async with asyncio.timeout(60):
                lines += [await asyncio.to_thread(process.stdout.readline) for _ in after]
            process.send_signal(signal.SIGINT)
            out, err = await asyncio.to_thread(process.communicate, timeout=30)
        finally:
            stop(process)
            await sink.close()
    finally:
        node.stop()
    assert [Event.from_json(line).id for line in lines] == [e.id for e in before + after]
    assert out == b"", "each event once"
    assert process.returncode == 0
    assert b"Traceback" not in err, err.decode()
