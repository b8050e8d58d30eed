"""Reading the stream ``<exchange>.stream`` within bounds: its last offset, what lies between two
offsets, and the message ids of its tail.

Every reading ends at a known offset, never "when it goes quiet" when the stream has something to
say: first the stream's last chunk, to learn its last offset (the broker sends it at once; an
empty stream sends nothing, the only wait that ends a reading without an offset); then from an
offset up to that one. A broker that stops sending before that offset raises
:class:`StreamStalled`. Nothing reads the whole stream: each reading is given its window.

Two users: ``hub tail`` (``hub.cli.broker``: the last N events matching a pattern, :func:`history`)
and the RabbitMQ sink (:func:`tail_ids`, :func:`ids_since`: which of the events the forwarder had
in flight before a crash or a lost connection are on the exchange already).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity

from core.topics import matches

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
"""Messages the broker may send ahead of the acknowledgements (a stream consumer needs one)."""
CLEANUP_AT_MOST = 2.0
"""Seconds to wait for the broker to end a reading (cancel the consumer, close the channel): a
broker that stalls must not hold up the one who gave up on it."""


class StreamStalled(Exception):
    """The broker sent nothing for :data:`STALL` seconds before the offset a reading waits for."""


def offset_of(message: AbstractIncomingMessage) -> int:
    """The message's offset in the stream (-1 if the broker did not say)."""
    offset = (message.headers or {}).get("x-stream-offset")
    return offset if isinstance(offset, int) else -1


@contextlib.asynccontextmanager
async def reading(
    stream: AbstractQueue, start: int | str
) -> AsyncIterator[asyncio.Queue[AbstractIncomingMessage]]:
    """The stream's messages from ``start`` (an offset, ``"last"``, ``"next"``), acknowledged as
    they come (a stream keeps them: acks only give the consumer credit). From an offset, the
    broker starts at the chunk that holds it: a few messages before ``start`` may come first."""
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def take(message: AbstractIncomingMessage) -> None:
        await message.ack()
        await inbox.put(message)

    tag = await stream.consume(take, arguments={"x-stream-offset": start})
    try:
        yield inbox
    finally:
        with contextlib.suppress(AMQPError, TimeoutError):
            async with asyncio.timeout(CLEANUP_AT_MOST):
                await stream.cancel(tag)


async def _next(inbox: asyncio.Queue[AbstractIncomingMessage]) -> AbstractIncomingMessage:
    try:
        async with asyncio.timeout(STALL):
            return await inbox.get()
    except TimeoutError:
        raise StreamStalled(f"the broker sent nothing for {STALL:g} s while reading") from None


async def last_offset(stream: AbstractQueue, *, first_wait: float = FIRST_WAIT) -> int | None:
    """The stream's last offset now, or None when nothing came within ``first_wait`` seconds
    (it is empty)."""
    last = None
    loop = asyncio.get_running_loop()
    async with reading(stream, "last") as inbox:
        deadline = loop.time() + first_wait + LAST_CHUNK_AT_MOST
        wait = first_wait
        with contextlib.suppress(TimeoutError):
            while loop.time() < deadline:
                async with asyncio.timeout(wait):
                    last = max(offset_of(await inbox.get()), last or -1)
                wait = QUIET
    return last


async def scan(
    stream: AbstractQueue,
    start: int,
    end: int,
    visit: Callable[[AbstractIncomingMessage], object],
) -> int:
    """Gives ``visit`` each message from offset ``start`` (or the chunk that holds it) up to
    ``end``; returns the first offset read (above ``start``: the stream's retention dropped what
    was before)."""
    first = -1
    async with reading(stream, start) as inbox:
        while True:
            message = await _next(inbox)
            offset = offset_of(message)
            if first < 0:
                first = offset
            if offset > end:  # it grew meanwhile: what is past ``end`` comes later
                break
            visit(message)
            if offset == end:
                break
    return first


async def history(stream: AbstractQueue, end: int, pattern: str, n: int) -> list[bytes]:
    """The stream's last ``n`` events matching ``pattern`` up to offset ``end``, oldest first:
    read back from ``end`` in windows growing fourfold, until ``n`` are found or the stream's
    start is reached."""
    if n <= 0:
        return []
    window = n
    while True:
        start = max(end - window + 1, 0)
        found: deque[bytes] = deque(maxlen=n)

        def keep(message: AbstractIncomingMessage, found: deque[bytes] = found) -> None:
            if matches(pattern, message.routing_key or ""):
                found.append(message.body)

        first = await scan(stream, start, end, keep)
        if len(found) >= n or start == 0 or first > start:
            return list(found)
        window *= 4


async def tail_ids(
    stream: AbstractQueue, window: int, *, first_wait: float = FIRST_WAIT
) -> set[str]:
    """The message ids of the stream's last ``window`` offsets (and of the chunk the first of
    them is in); empty for an empty stream."""
    end = await last_offset(stream, first_wait=first_wait)
    if end is None:
        return set()
    seen: set[str] = set()

    def keep(message: AbstractIncomingMessage) -> None:
        if message.message_id is not None:
            seen.add(message.message_id)

    await scan(stream, max(end - window + 1, 0), end, keep)
    return seen


async def ids_since(
    stream: AbstractQueue, seconds: float, *, first_wait: float = FIRST_WAIT
) -> set[str]:
    """The message ids of what the stream took in the last ``seconds`` (rounded up to whole
    seconds, by the broker's clock: its ``x-stream-offset`` interval; and the chunk it starts
    in), up to its last offset now; empty when it took nothing then. However many other
    publishers (other hubs) wrote meanwhile: the window is one of time, not of offsets."""
    end = await last_offset(stream, first_wait=first_wait)
    if end is None:
        return set()
    seen: set[str] = set()
    async with reading(stream, f"{max(math.ceil(seconds), 1)}s") as inbox:
        try:  # sent at once if it took any since; else the reading waits for the next one
            async with asyncio.timeout(first_wait):
                message = await inbox.get()
        except TimeoutError:
            return seen
        while (offset := offset_of(message)) <= end:
            if message.message_id is not None:
                seen.add(message.message_id)
            if offset == end:
                break
            message = await _next(inbox)
    return seen


@contextlib.asynccontextmanager
async def opened(connection: AbstractConnection, name: str) -> AsyncIterator[AbstractQueue | None]:
    """The stream ``name`` on a channel of its own (closed after), or None when there is no such
    queue."""
    channel = await connection.channel()
    try:
        await channel.set_qos(prefetch_count=PREFETCH)
        try:
            stream = await channel.get_queue(name)
        except ChannelNotFoundEntity:
            yield None
            return
        yield stream
    finally:
        if not channel.is_closed:
            with contextlib.suppress(AMQPError, TimeoutError):
                async with asyncio.timeout(CLEANUP_AT_MOST):
                    await channel.close()
