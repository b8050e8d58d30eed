"""``hub tail`` and ``hub replay`` on the broker: connecting once with a clear failure, and
reading the stream ``<exchange>.stream`` within bounds.

``hub tail`` with a broker shows the stream's last N events matching the pattern, then (unless
``--no-follow``) what arrives after them. The stream is read twice, each time up to a known
offset, never "until it goes quiet" when it has something to say: first its last chunk, to learn
its last offset; then back from it, in windows growing fourfold, until N matching events are
found or the stream's start is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity

from core.topics import matches
from sinks.rabbitmq import connect, declare_topology, stream_name

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the broker's first answer (an address that drops packets)."""
FIRST_WAIT = 2.0
"""Seconds to wait for the stream's last chunk, which the broker sends at once when there is
one: an empty stream sends nothing (the only wait that ends a reading without an offset)."""
QUIET = 0.3
"""Seconds without a message that end the reading of the last chunk (it comes in one burst)."""
LAST_CHUNK_AT_MOST = 3.0
"""Seconds the reading of the last chunk may take while events keep arriving."""
STALL = 15.0
"""Seconds without a message, before the offset a reading waits for, that mean the broker
stopped answering."""
PREFETCH = 1000


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
    except (AMQPError, OSError) as exc:
        raise BrokerError(f"broker error ({said(exc)})") from None
    finally:
        with contextlib.suppress(AMQPError, OSError):
            await connection.close()


def said(exc: BaseException) -> str:
    """An exception in one line: its type, and its message when it has one."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _offset(message: AbstractIncomingMessage) -> int:
    offset = (message.headers or {}).get("x-stream-offset")
    return offset if isinstance(offset, int) else -1


@contextlib.asynccontextmanager
async def _reading(
    stream: AbstractQueue, start: int | str
) -> AsyncIterator[asyncio.Queue[AbstractIncomingMessage]]:
    """The stream's messages from ``start`` (an offset, ``"last"``), acknowledged as they come
    (a stream keeps them: acks only give the consumer credit)."""
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def take(message: AbstractIncomingMessage) -> None:
        await message.ack()
        await inbox.put(message)

    tag = await stream.consume(take, arguments={"x-stream-offset": start})
    try:
        yield inbox
    finally:
        with contextlib.suppress(AMQPError):
            await stream.cancel(tag)


async def _next(inbox: asyncio.Queue[AbstractIncomingMessage]) -> AbstractIncomingMessage:
    try:
        async with asyncio.timeout(STALL):
            return await inbox.get()
    except TimeoutError:
        raise BrokerError(f"the broker sent nothing for {STALL:g} s while reading") from None


async def last_offset(stream: AbstractQueue) -> int | None:
    """The stream's last offset now, or None when it is empty."""
    last = None
    loop = asyncio.get_running_loop()
    async with _reading(stream, "last") as inbox:
        deadline = loop.time() + FIRST_WAIT + LAST_CHUNK_AT_MOST
        wait = FIRST_WAIT
        with contextlib.suppress(TimeoutError):
            while loop.time() < deadline:
                async with asyncio.timeout(wait):
                    last = max(_offset(await inbox.get()), last or -1)
                wait = QUIET
    return last


async def _scan(
    stream: AbstractQueue, start: int, end: int, pattern: str, n: int
) -> tuple[list[bytes], int]:
    """The last ``n`` bodies matching ``pattern`` at offsets ``start`` to ``end``, and the
    first offset read (above ``start``: the stream's retention dropped what was before)."""
    found: deque[bytes] = deque(maxlen=n)
    first = -1
    async with _reading(stream, start) as inbox:
        while True:
            message = await _next(inbox)
            offset = _offset(message)
            if first < 0:
                first = offset
            if offset > end:  # it grew meanwhile: what is past ``end`` comes later
                break
            if matches(pattern, message.routing_key or ""):
                found.append(message.body)
            if offset == end:
                break
    return list(found), first


async def history(stream: AbstractQueue, end: int, pattern: str, n: int) -> list[bytes]:
    """The stream's last ``n`` events matching ``pattern`` up to offset ``end``, oldest first."""
    if n <= 0:
        return []
    window = n
    while True:
        start = max(end - window + 1, 0)
        found, first = await _scan(stream, start, end, pattern, n)
        if len(found) >= n or start == 0 or first > start:
            return found
        window *= 4


async def stream_of(connection: AbstractRobustConnection, exchange: str) -> AbstractQueue | None:
    """The hub's stream on the broker, or None when it keeps none (``HUB_STREAM=false``)."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
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
    async with _reading(stream, "next" if after is None else after + 1) as inbox:
        while True:
            message = await inbox.get()
            offset = _offset(message)
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
