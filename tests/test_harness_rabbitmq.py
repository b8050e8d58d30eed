"""The throwaway RabbitMQ harness: start, use with aio-pika, restart, stop, no leftovers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import aio_pika
import pytest
from pamqp.commands import Basic

from tests.harness.rabbitmq import RabbitNode, broker_required, rabbitmq_available

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        not rabbitmq_available() and not broker_required(),
        reason="rabbitmq-server is not installed",
    ),
]


def _live(pids: Sequence[int]) -> list[int]:
    """PIDs among ``pids`` that `ps` still shows as live (zombies count as gone)."""
    if not pids:
        return []
    ps = subprocess.run(
        ["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, pids))],
        capture_output=True,
        text=True,
        check=False,
    )
    live = []
    for line in ps.stdout.splitlines():
        pid, stat = line.split(None, 1)
        if not stat.startswith("Z"):
            live.append(int(pid))
    return live


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RabbitNode]:
    n = RabbitNode(tmp_path / "rabbit")
    try:
        yield n
    finally:
        n.stop()


async def _start(node: RabbitNode) -> list[int]:
    """Start ``node`` off the event loop; return every PID it consists of."""
    await asyncio.to_thread(node.start)
    assert node.running
    beam = node.beam_pid()
    assert beam is not None
    pids = node.pids()  # beam, its port programs, epmd (maybe a transient df)
    assert beam in pids
    assert _live([beam]) == [beam]
    return pids


@pytest.mark.asyncio
async def test_start_publish_get_stop(node: RabbitNode) -> None:
    pids = await _start(node)
    assert node.url == f"amqp://guest:guest@127.0.0.1:{node.port}/"

    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("harness-check", durable=False)
        confirmation = await channel.default_exchange.publish(
            aio_pika.Message(b"hello", content_type="text/plain"),
            routing_key=queue.name,
        )
        assert isinstance(confirmation, Basic.Ack)  # broker confirmed it
        message = await queue.get(timeout=5, fail=True)
        assert message is not None
        await message.ack()
        assert message.body == b"hello"

    assert "harness-check" in node.rabbitmqctl("list_queues", "name")

    await asyncio.to_thread(node.stop)
    assert not node.running
    assert _live(pids) == []
    assert node.pids() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", node.port), timeout=1).close()
    node.stop()  # idempotent


@pytest.mark.asyncio
async def test_restart_keeps_durable_queue(node: RabbitNode) -> None:
    first = await _start(node)
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("harness-durable", durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="harness-durable",
        )

    port = node.port
    await asyncio.to_thread(node.restart)
    assert _live(first) == []
    assert node.port == port

    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("harness-durable", durable=True, passive=True)
        message = await queue.get(timeout=5, fail=True)
        assert message is not None
        await message.ack()
        assert message.body == b"kept"

    second = node.pids()
    await asyncio.to_thread(node.stop)
    assert _live(second) == []


def test_a_port_taken_meanwhile_is_replaced_at_first_start(node: RabbitNode) -> None:
    """Someone binds the chosen AMQP port before the node does: it starts on fresh ports."""
    taken = node.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        node.start(timeout=120)
    try:
        assert node.running
        assert node.port != taken
        with socket.create_connection(("127.0.0.1", node.port), timeout=5):
            pass
    finally:
        node.stop()
    assert node.pids() == []


def test_failed_start_raises_with_logs_and_leaves_nothing(node: RabbitNode) -> None:
    """A start that cannot succeed (the AMQP port taken at every try) says why, leaves nothing."""
    original = node._pick_ports
    node._pick_ports = lambda: None  # the same taken port every time
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", node.port))
        blocker.listen()
        with pytest.raises(RuntimeError, match=r"(?s)hubtest-.*---") as info:
            node.start(timeout=60)
    node._pick_ports = original
    assert not node.running
    assert node.pids() == []
    assert "eaddrinuse" in str(info.value)  # the log tail says why
    node.stop()  # still safe
