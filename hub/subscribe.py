"""Subscribing to the hub's events: a consumer helper for Python and the ``hub subscribe`` command.

Three ways to read (docs/subscribe.md says what a consumer in any language receives):

- live (the default): a temporary queue bound to the pattern, deleted when the subscriber leaves;
- ``queue=NAME``: a durable quorum queue bound to the pattern, that keeps events while the
  subscriber is away; rejected events, and events given back more than ``DELIVERY_LIMIT`` times,
  go to the queue ``NAME.dead``;
- ``from_=...``: the stream ``<exchange>.stream``, read from a point (``"first"``, an offset, a
  time), then live; the pattern is applied by the subscriber, in :func:`matches`.

::

    async with Subscription(url, "*.*.delivery.failed") as events:
        async for delivery in events:
            print(delivery.event.data.recipient)
            await delivery.ack()

An event id already yielded (among the last ``dedup``) is acknowledged and skipped: providers'
retries, events published again by ``hub replay``, events given again after a reconnection.

Reconnection is one loop (:meth:`Subscription._reconnecting`): when the channel or the
connection closes (a broker restart, a network cut), it connects again until it works, consumes
into a new inbox, and waits for the next close. Events left in the old channel's inbox are
dropped unsettled: the broker gives them again. The stream is read again from the offset after
the last event read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Literal, TypeAlias

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)
from pamqp.common import FieldTable

from core.models import Event, NotAnEvent
from core.topics import DEFAULT_EXCHANGE, check_pattern, matches
from sinks.rabbitmq import declare_topology, stream_name

log = logging.getLogger(__name__)

RECONNECT_INTERVAL = 1.0
"""Seconds between two attempts to connect again (a subscriber wants its events soon after a
broker restart)."""
CONNECT_TIMEOUT = 30.0
"""Seconds a connection to the broker may take (its handshake: an address that takes the
connection and never answers)."""

Offset: TypeAlias = Literal["first", "last", "next"] | int | datetime
"""Where to start reading the stream: its first event, its last, the next one, an offset, or
the first event the stream received at or after a time."""

DELIVERY_LIMIT = 10
"""Times an event may go back to a durable subscription's queue (requeued, or unacknowledged
when its subscriber left); once more and it is dead-lettered."""


class SubscribeError(Exception):
    """The subscription cannot be opened as asked (no stream, a queue with other arguments)."""


_AGO = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_from(text: str) -> Offset:
    """``first``, ``last``, ``next``, an offset, an ISO 8601 time (UTC when no offset is given)
    or a duration ago (``30m``, ``2h``, ``7d``)."""
    if text in ("first", "last", "next"):
        return text  # type: ignore[return-value]  # narrowed by the test above
    if text == "beginning":
        return "first"
    if text.isdigit():
        return int(text)
    if ago := _AGO.fullmatch(text):
        delta = timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        return datetime.now(UTC) - delta
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def dead_letter_name(queue: str) -> str:
    return f"{queue}.dead"


def durable_arguments(queue: str) -> FieldTable:
    """The arguments of a durable subscription's quorum queue."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_name(queue),
        "x-delivery-limit": DELIVERY_LIMIT,
    }


class Delivery:
    """One event, to settle with :meth:`ack` or :meth:`reject` (else it comes back when the
    subscriber leaves, except from the stream)."""

    def __init__(
        self, event: Event, message: AbstractIncomingMessage, subscription: Subscription
    ) -> None:
        self.event = event
        self.message = message
        self._subscription = subscription

    @property
    def routing_key(self) -> str:
        return self.message.routing_key or ""

    @property
    def offset(self) -> int | None:
        """The event's offset in the stream, when read from it (also the SSE id)."""
        offset = (self.message.headers or {}).get("x-stream-offset")
        return offset if isinstance(offset, int) else None

    @property
    def redelivered(self) -> bool:
        return bool(self.message.redelivered)

    async def ack(self) -> None:
        """Settles the event. If its channel closed meanwhile (a reconnection), the broker gives
        it again to the next consumer, and the subscription acknowledges it then without
        yielding it (its id was seen)."""
        try:
            await self.message.ack()
        except ChannelInvalidStateError:
            log.info("an event's channel closed before its ack: the broker keeps it")

    async def reject(self, *, requeue: bool = False) -> None:
        """Dead-letters the event (durable subscription), drops it (live) or requeues it. A
        stream keeps every event: there, rejecting only moves on."""
        if requeue:
            self._subscription.forget(self.event.id)
        try:
            if self._subscription.from_ is not None:
                await self.message.ack()  # streams refuse reject and nack (a connection error)
            else:
                await self.message.reject(requeue=requeue)
        except ChannelInvalidStateError:
            log.info("an event's channel closed before its reject: the broker keeps it")


class Subscription:
    """Events of ``exchange`` matching ``pattern``, as :class:`Delivery` objects, from the moment
    ``async with`` returns. See the module's docstring for ``queue`` and ``from_``."""

    def __init__(
        self,
        url: str,
        pattern: str = "#",
        *,
        exchange: str = DEFAULT_EXCHANGE,
        queue: str | None = None,
        from_: Offset | None = None,
        prefetch: int = 100,
        dedup: int = 10_000,
    ) -> None:
        if queue is not None and from_ is not None:
            raise ValueError("a subscription reads a queue or the stream, not both")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1 (the stream needs a bound)")
        self.url = url
        self.pattern = check_pattern(pattern)
        self.exchange = exchange
        self.queue = queue
        self.from_ = from_
        self.prefetch = prefetch
        self.queue_name = ""
        """The queue (or stream) read, once open."""
        self._dedup = dedup
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        """The current channel's messages; ``None`` in it says that the channel is gone."""
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resume: int | None = None
        """The stream's offset after the last event read: where a new channel starts."""

    async def __aenter__(self) -> Subscription:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connects, declares what the subscription needs and starts consuming; from then on,
        connects again by itself whenever the channel or the connection closes. A broker that
        does not answer within ``CONNECT_TIMEOUT`` is a ``TimeoutError``."""
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._reconnecting())

    async def _connect(self) -> None:
        connection = await aio_pika.connect(
            self.url, client_properties={"connection_name": "callback-hub subscriber"}
        )
        try:
            self._lost.clear()
            connection.close_callbacks.add(self._on_close)
            self._connection = connection
            await self._consume()
        except BaseException:
            self._connection = self._channel = None
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    def _on_close(self, sender: object, *_: object) -> None:
        """The connection or the channel closed: the reconnecting loop takes it from here (the
        close of one already given up, or of ours on the way out, says nothing new)."""
        if sender is not None and sender in (self._connection, self._channel):
            self._lost.set()

    async def _reconnecting(self) -> None:
        """The one loop that owns reconnection: waits for the channel or the connection to
        close, then connects again until it works."""
        while True:
            await self._lost.wait()
            log.warning("subscription %s: lost the broker, connecting again", self.queue_name)
            self._drop()
            said = False
            while True:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await self._connect()
                    break
                except (AMQPError, OSError, SubscribeError, TimeoutError) as exc:
                    if not said:
                        log.warning(
                            "subscription %s: not reading (%r), retrying", self.queue_name, exc
                        )
                        said = True
                    await asyncio.sleep(RECONNECT_INTERVAL)
            log.info("subscription %s: reading again on a new connection", self.queue_name)

    def _drop(self) -> None:
        """Forgets the dead channel and connection, and the events left in the channel's inbox
        (unacknowledged: the broker gives them to the next consumer)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            # the channel alone closed: its connection goes too, in the background
            asyncio.get_running_loop().create_task(_close_quietly(connection))
        self._switch_inbox(asyncio.Queue())

    def _switch_inbox(self, inbox: asyncio.Queue[AbstractIncomingMessage | None]) -> None:
        """Reads from ``inbox`` from now on; a reader waiting on the old one is woken."""
        old, self._inbox = self._inbox, inbox
        old.put_nowait(None)

    async def _consume(self) -> None:
        assert self._connection is not None
        channel = self._channel = await self._connection.channel()
        channel.close_callbacks.add(self._on_close)
        await channel.set_qos(prefetch_count=self.prefetch)
        arguments: FieldTable = {}
        queue: AbstractQueue
        if self.from_ is not None:
            name = stream_name(self.exchange)
            try:
                queue = await channel.get_queue(name)
            except ChannelNotFoundEntity as exc:
                if "home node" in str(exc):  # there, but not up yet (a restart): try again
                    raise
                raise SubscribeError(f"no stream {name}: the hub keeps none yet") from None
            arguments["x-stream-offset"] = self._resume if self._resume is not None else self.from_
        else:
            exchange = await declare_topology(channel, self.exchange)
            queue = await self._declare_queue(channel)
            await queue.bind(exchange, self.pattern)
        self.queue_name = queue.name
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        await queue.consume(inbox.put, arguments=arguments)
        self._switch_inbox(inbox)

    async def _declare_queue(self, channel: aio_pika.abc.AbstractChannel) -> AbstractQueue:
        if self.queue is None:
            name = f"{self.exchange}.subscriber.{uuid.uuid4().hex[:12]}"
            return await channel.declare_queue(name, exclusive=True, auto_delete=True)
        dead = dead_letter_name(self.queue)
        try:
            await channel.declare_queue(dead, durable=True, arguments={"x-queue-type": "quorum"})
            return await channel.declare_queue(
                self.queue, durable=True, arguments=durable_arguments(self.queue)
            )
        except ChannelPreconditionFailed as exc:
            raise SubscribeError(
                f"queue {self.queue} exists with other arguments ({exc}): use another name"
            ) from None

    async def close(self) -> None:
        """Closes the connection: unsettled events go back to their queue; a live subscription's
        queue is deleted."""
        task, self._task = self._task, None
        self._channel = None  # its close, and the connection's, are ours: not to be repaired
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close_quietly(connection)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            message = await self._inbox.get()
            if message is None:  # that channel is gone: read the next one's inbox
                continue
            try:
                delivery = await self._accept(message)
            except ChannelInvalidStateError:  # left from a closed channel: the broker keeps it
                continue
            if delivery is not None:
                return delivery

    async def _accept(self, message: AbstractIncomingMessage) -> Delivery | None:
        """The delivery to yield, or None when the message is settled here and skipped."""
        if self.from_ is not None and isinstance(
            offset := (message.headers or {}).get("x-stream-offset"), int
        ):
            self._resume = offset + 1
        if self.from_ is not None and not matches(self.pattern, message.routing_key or ""):
            await message.ack()
            return None
        try:
            event = Event.from_json(message.body)
        except NotAnEvent as exc:
            log.warning("not a hub event (message_id %s, %s): rejected", message.message_id, exc)
            await (message.ack() if self.from_ is not None else message.reject())
            return None
        if event.id in self._seen:
            self._seen.move_to_end(event.id)
            await message.ack()
            return None
        self._remember(event.id)
        return Delivery(event, message, self)

    def _remember(self, event_id: str) -> None:
        if self._dedup <= 0:
            return
        self._seen[event_id] = None
        while len(self._seen) > self._dedup:
            self._seen.popitem(last=False)

    def forget(self, event_id: str) -> None:
        """Lets ``event_id`` be yielded again (it was requeued)."""
        self._seen.pop(event_id, None)


async def _close_quietly(connection: AbstractConnection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await connection.close()
