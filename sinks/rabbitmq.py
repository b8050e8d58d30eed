"""RabbitMQ sink: events to a durable topic exchange, confirmed by the broker.

Topology (declared by the hub at connection, idempotently):
- ``<exchange>`` (default ``callback-hub``): durable topic exchange; routing key
  ``<provider>.<channel>.<kind>.<state>``; its alternate exchange is ``<exchange>.unrouted``.
- ``<exchange>.unrouted``: durable fanout exchange with a durable queue of the same name, where
  events no subscription matches are kept instead of being dropped.
- ``<exchange>.stream`` (when asked for, :class:`StreamRetention`): a RabbitMQ stream bound with
  ``#``, so every event stays readable, in order and by offset, for the retention's time and size.
  Being bound to everything, it leaves nothing unrouted: with the stream, the unrouted queue only
  catches events while the stream is deleted.

Each event is one persistent message, body = the CloudEvents JSON document
(``application/cloudevents+json``), ``message_id`` = the event id, ``type`` = the event type. It is
published with ``mandatory`` and publisher confirms: ``publish`` returns only once the broker has
confirmed every message; a message the broker returns (not even the alternate exchange could take
it), a negative confirm, a lost connection or a timeout raise :class:`SinkUnavailable`.

The connection is robust: it reconnects by itself after a broker restart; meanwhile ``publish``
fails fast and ``ready`` is false. With a stream, ``ready`` also waits, after each connection,
for the stream to take a consumer: RabbitMQ 3.10 confirms the messages it routes to a stream
whose member is not up yet (the first second or so after a restart) and does not keep them, so
the events published then would be missing from the stream (measured: every message published
before a consumer could attach was lost, none after).

What reached the exchange, the stream tells (:meth:`RabbitMQSink.already_published`): before
publishing again what it had in flight, after a start (a crash, the broker staying up), the
forwarder asks which of those events are there already, and the sink reads what the stream took
since the forwarder's last confirm (other hubs may publish any number meanwhile), or its last
``lookback`` offsets when that time is not known (``sinks.stream``), once ready (the stream is up
then: what it routed before is in it). Bounded in time (``check_timeout``): a broker too slow, or
a stream an operator deleted, gives no answer (None), and the forwarder publishes, accepting
copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
    UnderlayConnection,
)
from aio_pika.connection import make_url
from aio_pika.exceptions import (
    AMQPError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    PublishError,
)
from pamqp.common import FieldTable

from core.errors import SinkUnavailable
from core.models import CONTENT_TYPE, Envelope
from core.topics import DEFAULT_EXCHANGE
from sinks import stream as stream_reading

log = logging.getLogger(__name__)


STREAM_SEGMENT_BYTES = 100_000_000
"""Largest segment file of the stream: retention drops whole segments, the oldest first."""

STREAM_POLL_INTERVAL = 0.1
"""Seconds between two checks that the stream takes a consumer, after a connection."""

TAIL_FIRST_WAIT = 1.0
"""Seconds :meth:`RabbitMQSink.already_published` waits for the stream's last chunk (sent at once
when there is one): what an empty stream costs each time it is asked."""


SINCE_SLACK = 2.0
"""Seconds read before :meth:`RabbitMQSink.already_published`'s ``since``: the interval's whole
seconds, the clocks of two hosts (a replica restarted elsewhere)."""


def unrouted_name(exchange: str) -> str:
    return f"{exchange}.unrouted"


def stream_name(exchange: str) -> str:
    return f"{exchange}.stream"


@dataclass(frozen=True)
class StreamRetention:
    """How long and how much the stream keeps (``x-max-age``, ``x-max-length-bytes``)."""

    max_age: str = "7D"
    """A number and a unit among Y M D h m s."""
    max_bytes: int = 2_000_000_000

    def arguments(self) -> FieldTable:
        segment = max(min(STREAM_SEGMENT_BYTES, self.max_bytes // 4), 1)
        return {
            "x-queue-type": "stream",
            "x-max-age": self.max_age,
            "x-max-length-bytes": self.max_bytes,
            "x-stream-max-segment-size-bytes": segment,
        }


async def declare_topology(
    channel: AbstractChannel, exchange: str, *, stream: StreamRetention | None = None
) -> AbstractExchange:
    """Declares the event exchange, its alternate exchange and the unrouted queue; with
    ``stream``, also the stream that keeps every event (see :func:`declare_stream`)."""
    unrouted = unrouted_name(exchange)
    fallback = await channel.declare_exchange(unrouted, ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(unrouted, durable=True)
    await queue.bind(fallback)
    declared = await channel.declare_exchange(
        exchange,
        ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": unrouted},
    )
    if stream is not None:
        await declare_stream(channel, exchange, stream)
    return declared


async def stream_is_up(connection: UnderlayConnection, exchange: str) -> bool:
    """The stream takes a consumer (the broker keeps what it routes there), or it is gone (the
    unrouted queue then keeps the events). False while its member is not up: the broker says
    that the stream's "home node" is down."""
    channel = await connection.connection.channel()
    try:
        await channel.basic_qos(prefetch_count=1)
        await channel.basic_consume(
            stream_name(exchange),
            _ignore,
            consumer_tag=_CHECK_TAG,
            arguments={"x-stream-offset": "next"},
        )
        await channel.basic_cancel(_CHECK_TAG)
    except ChannelNotFoundEntity as exc:
        return "home node" not in str(exc)
    finally:
        if not channel.is_closed:
            await channel.close()
    return True


_CHECK_TAG = "callback-hub.stream-check"


async def _ignore(message: object) -> None:
    """Consumes nothing: a consumer at ``next`` that is cancelled at once gets no message."""


async def declare_stream(
    channel: AbstractChannel, exchange: str, retention: StreamRetention
) -> None:
    """Declares ``<exchange>.stream`` bound with ``#``, on a channel of its own.

    A stream that exists with other arguments is kept as it is, with a warning (the broker
    refuses to change them: use a policy, or delete the stream); ``channel`` stays open."""
    name = stream_name(exchange)
    connection = (await channel.get_underlay_channel()).connection
    side = await connection.channel()
    try:
        await side.queue_declare(name, durable=True, arguments=retention.arguments())
    except ChannelPreconditionFailed as exc:
        log.warning("stream %s kept with its own arguments: %s", name, exc)
        side = await connection.channel()
    try:
        await side.queue_bind(name, exchange, routing_key="#")
    finally:
        await side.close()


def to_message(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        body=envelope.body,
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=envelope.id,
        type=envelope.type,
        timestamp=envelope.time,
        app_id="callback-hub",
    )


async def connect(url: str, **options: Any) -> AbstractRobustConnection:
    """``aio_pika.connect_robust(url, **options)``, but a first attempt that is cancelled (a
    timeout, a stop) leaves nothing behind. aio-pika's reconnection task takes that
    cancellation for a lost connection and tries again, for ever, swallowing every later
    cancellation too: the process would never end (``asyncio.run`` waits for its tasks)."""
    client_properties = options.pop("client_properties", None)
    connection = aio_pika.RobustConnection(
        make_url(url, **options), client_properties=client_properties, **options
    )
    try:
        await connection.connect()
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.close()  # and with it its reconnection task
        raise
    return connection


class RabbitMQSink:
    def __init__(
        self,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
        stream: StreamRetention | None = None,
        lookback: int = 1024,
        check_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.exchange_name = exchange
        self.stream = stream
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stream_up_on: UnderlayConnection | None = None
        """The connection on which the stream was seen taking a consumer."""
        self._stream_check: asyncio.Task[None] | None = None
        self.lookback = lookback
        """Offsets at the stream's end read by :meth:`already_published` (at least as many as
        it is asked about)."""
        self.check_timeout = check_timeout
        """Seconds :meth:`already_published` may take before it gives up (None)."""
        self._said_gone = False
        self._said_unusable = False
        """The broker was said not usable since the last connection."""

    def start(self) -> None:
        """Connects in the background, trying again until the broker answers."""
        self._connecting = asyncio.get_running_loop().create_task(self._connect_forever())

    async def wait_connected(self) -> None:
        """Returns once the first connection is up (bound it with ``asyncio.timeout``)."""
        await self._connected.wait()

    async def _connect_forever(self) -> None:
        while True:
            connection: AbstractRobustConnection | None = None
            try:
                connection = await connect(
                    self.url,
                    reconnect_interval=self.reconnect_interval,
                    client_properties={"connection_name": "callback-hub"},
                )
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self._exchange = await declare_topology(
                    channel, self.exchange_name, stream=self.stream
                )
            except Exception as exc:  # down, the topology refused, or the client tripping on a
                # cut handshake (aiormq's StopAsyncIteration under uvloop): said once, tried again
                said = log.debug if self._said_unusable else log.warning
                said(
                    "broker not usable (%s: %s), trying again every %g s",
                    type(exc).__name__,
                    exc,
                    self.reconnect_interval,
                )
                self._said_unusable = True
                if connection is not None:
                    with contextlib.suppress(AMQPError, OSError):
                        await connection.close()
                await asyncio.sleep(self.reconnect_interval)
                continue
            self._connection = connection
            if self.stream is not None:
                connection.reconnect_callbacks.add(self._on_reconnect)
                await self._wait_for_stream(connection)
            self._connected.set()
            self._said_unusable = False
            log.info("connected to the broker, exchange %s", self.exchange_name)
            return

    def _on_reconnect(self, sender: AbstractRobustConnection | None) -> None:
        connection = sender or self._connection
        if connection is None:
            return
        if self._stream_check is not None:
            self._stream_check.cancel()
        self._stream_check = asyncio.get_running_loop().create_task(
            self._wait_for_stream(connection)
        )

    async def _wait_for_stream(self, connection: AbstractRobustConnection) -> None:
        """Waits until the stream takes a consumer on this connection (see the module's
        docstring); ``ready`` is false until then."""
        while (underlay := connection.transport) is not None:
            try:
                if await stream_is_up(underlay, self.exchange_name):
                    self._stream_up_on = underlay
                    return
            except (AMQPError, OSError):
                pass  # the connection is going: the next one is checked again
            await asyncio.sleep(STREAM_POLL_INTERVAL)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """All envelopes in flight at once, in order on one channel; returns when all are
        confirmed. On failure, ``SinkUnavailable.done`` counts the leading ones confirmed."""
        exchange = self._exchange
        if exchange is None or not self.ready:
            raise SinkUnavailable("not connected to the broker", reason="broker_unavailable")
        tasks = [
            asyncio.ensure_future(exchange.publish(to_message(e), e.routing_key, mandatory=True))
            for e in envelopes
        ]
        _, late = await asyncio.wait(tasks, timeout=self.publish_timeout)
        for task in late:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        done = 0
        for result in results:
            if isinstance(result, BaseException):
                break
            done += 1
        if done == len(results):
            return
        error = results[done]
        assert isinstance(error, BaseException)
        raise SinkUnavailable(_describe(error), reason=_reason(error), done=done) from error

    async def already_published(
        self, envelopes: Sequence[Envelope], *, since: float | None = None
    ) -> set[str] | None:
        """The ids of ``envelopes`` already on the exchange: a message whose confirm never came
        back is there all the same. Read in what the stream took since ``since`` (the
        forwarder's last confirm; less the publish timeout and :data:`SINCE_SLACK`): other
        hubs on the exchange may have written any number of messages after these meanwhile;
        without ``since``, in the stream's last ``lookback`` offsets (or as many as
        ``envelopes``, if more). Empty without a stream (nothing to read: they are sent
        again). None when it cannot tell: the stream is gone (said once), or the broker did not
        answer within ``check_timeout`` (said each time). A lost connection raises
        :class:`SinkUnavailable`, to be asked again once ready."""
        if self.stream is None or not envelopes:
            return set()
        connection = self._connection
        if connection is None or not self.ready:
            raise SinkUnavailable("not connected to the broker", reason="broker_unavailable")
        name = stream_name(self.exchange_name)
        window = max(self.lookback, len(envelopes))
        try:
            async with (
                asyncio.timeout(self.check_timeout),
                stream_reading.opened(connection, name) as stream,
            ):
                if stream is None:
                    if not self._said_gone:
                        log.warning("stream %s not found: events are sent again unchecked", name)
                        self._said_gone = True
                    return None
                if since is None:
                    seen = await stream_reading.tail_ids(stream, window, first_wait=TAIL_FIRST_WAIT)
                else:
                    seconds = time.time() - since + self.publish_timeout + SINCE_SLACK
                    seen = await stream_reading.ids_since(
                        stream, seconds, first_wait=TAIL_FIRST_WAIT
                    )
        except (TimeoutError, stream_reading.StreamStalled):
            log.warning(
                "stream %s not read within %g s: %d events sent again unchecked",
                name,
                self.check_timeout,
                len(envelopes),
            )
            return None
        except (AMQPError, OSError) as exc:
            raise SinkUnavailable(_describe(exc), reason="broker_unavailable") from exc
        self._said_gone = False
        return {e.id for e in envelopes if e.id in seen}

    @property
    def ready(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed or not connection.connected.is_set():
            return False
        return self.stream is None or connection.transport is self._stream_up_on

    async def close(self) -> None:
        for task in (self._connecting, self._stream_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._exchange = None


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "broker_timeout"
    if isinstance(error, PublishError):
        return "unroutable"
    return "broker_unavailable"


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "no confirm from the broker in time"
    return f"broker error: {error!r}"
