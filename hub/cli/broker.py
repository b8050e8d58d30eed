"""``hub tail`` and ``hub replay`` on the broker: connecting once with a clear failure, and
reading the stream ``<exchange>.stream`` within bounds.

``hub tail`` with a broker shows the stream's last N events matching the pattern, then (unless
``--no-follow``) what arrives after them. The bounded readings of the stream (its last offset,
then back from it in windows growing fourfold) are ``sinks.stream``'s, which the forwarder uses
too; here are the connection, the stream's lookup and the following.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity

from core.topics import matches
from sinks import stream as stream_reading
from sinks.rabbitmq import connect, declare_topology, stream_name

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the broker's first answer (an address that drops packets)."""


class BrokerError(Exception):
    """The broker cannot be reached, or stopped answering: one line for the user."""


@contextlib.asynccontextmanager
async def connected(url: str, name: str) -> AsyncIterator[AbstractRobustConnection]:
    """A connection to the broker, or :class:`BrokerError` at once when there is none."""
    transport_log = logging.getLogger("aiormq.connection")
    level = transport_log.level
    transport_log.setLevel(logging.CRITICAL)  # its error is said below, once
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            connection = await connect(
                url, client_properties={"connection_name": f"callback-hub {name}"}
            )
    except (AMQPError, OSError, TimeoutError) as exc:
        raise BrokerError(f"cannot reach the broker ({said(exc)})") from None
    finally:
        transport_log.setLevel(level)
    try:
        yield connection
    except stream_reading.StreamStalled as exc:
        raise BrokerError(str(exc)) from None
    except (AMQPError, OSError) as exc:
        raise BrokerError(f"broker error ({said(exc)})") from None
    finally:
        with contextlib.suppress(AMQPError, OSError):
            await connection.close()


def said(exc: BaseException) -> str:
    """An exception in one line: its type, and its message when it has one."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def stream_of(connection: AbstractRobustConnection, exchange: str) -> AbstractQueue | None:
    """The hub's stream on the broker, or None when it keeps none (``HUB_STREAM=false``)."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=stream_reading.PREFETCH)
    try:
        return await channel.get_queue(stream_name(exchange))
    except ChannelNotFoundEntity:
        return None


async def follow_stream(
    stream: AbstractQueue, after: int | None, pattern: str, show: Callable[[bytes], Any]
) -> None:
    """Shows the events matching ``pattern`` after offset ``after`` (all to come: None), for
    ever. After a reconnection aio-pika consumes again from the same offset: what was shown
    already is skipped."""
    shown = -1 if after is None else after
    async with stream_reading.reading(stream, "next" if after is None else after + 1) as inbox:
        while True:
            message = await inbox.get()
            offset = stream_reading.offset_of(message)
            if offset <= shown:
                continue
            shown = offset
            if matches(pattern, message.routing_key or ""):
                show(message.body)


async def follow_live(
    connection: AbstractRobustConnection,
    exchange: str,
    pattern: str,
    show: Callable[[bytes], Any],
) -> None:
    """Without a stream: the events published from now on, through a queue of the command's
    own (deleted when it leaves)."""
    channel = await connection.channel()
    declared = await declare_topology(channel, exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(declared, pattern)
    print("no stream on the broker: events from now on only", file=sys.stderr, flush=True)
    async with queue.iterator() as messages:
        async for message in messages:
            async with message.process():
                show(message.body)
