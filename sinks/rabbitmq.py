"""RabbitMQ sink: events to a durable topic exchange, confirmed by the broker.

Topology (declared by the hub at connection, idempotently):
- ``<exchange>`` (default ``callback-hub``): durable topic exchange; routing key
  ``<provider>.<channel>.<kind>.<state>``; its alternate exchange is ``<exchange>.unrouted``.
- ``<exchange>.unrouted``: durable fanout exchange with a durable queue of the same name, where
  events no subscription matches are kept instead of being dropped.

Each event is one persistent message, body = the CloudEvents JSON document
(``application/cloudevents+json``), ``message_id`` = the event id, ``type`` = the event type. It is
published with ``mandatory`` and publisher confirms: ``publish`` returns only once the broker has
confirmed every message; a message the broker returns (not even the alternate exchange could take
it), a negative confirm, a lost connection or a timeout raise :class:`SinkUnavailable`.

The connection is robust: it reconnects by itself after a broker restart; meanwhile ``publish``
fails fast and ``ready`` is false.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.exceptions import AMQPError, PublishError

from hub.errors import SinkUnavailable
from hub.models import CONTENT_TYPE, Event

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "callback-hub"


def unrouted_name(exchange: str) -> str:
    return f"{exchange}.unrouted"


async def declare_topology(channel: AbstractChannel, exchange: str) -> AbstractExchange:
    """Declares the event exchange, its alternate exchange and the unrouted queue."""
    unrouted = unrouted_name(exchange)
    fallback = await channel.declare_exchange(unrouted, ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(unrouted, durable=True)
    await queue.bind(fallback)
    return await channel.declare_exchange(
        exchange,
        ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": unrouted},
    )


def to_message(event: Event) -> aio_pika.Message:
    return aio_pika.Message(
        body=event.to_json(),
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=event.id,
        type=event.type,
        timestamp=event.time,
        app_id="callback-hub",
    )


class RabbitMQSink:
    def __init__(
        self,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.exchange_name = exchange
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._connecting: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connects in the background, trying again until the broker answers."""
        self._connecting = asyncio.get_running_loop().create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        while True:
            try:
                connection = await aio_pika.connect_robust(
                    self.url,
                    reconnect_interval=self.reconnect_interval,
                    client_properties={"connection_name": "callback-hub"},
                )
            except (AMQPError, OSError) as exc:
                log.warning("broker not reachable (%s), trying again", type(exc).__name__)
                await asyncio.sleep(self.reconnect_interval)
                continue
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await declare_topology(channel, self.exchange_name)
            self._connection = connection
            log.info("connected to the broker, exchange %s", self.exchange_name)
            return

    async def publish(self, events: Sequence[Event]) -> None:
        exchange = self._exchange
        if exchange is None or not self.ready:
            raise SinkUnavailable("not connected to the broker", reason="broker_unavailable")
        try:
            async with asyncio.timeout(self.publish_timeout):
                await asyncio.gather(
                    *(
                        exchange.publish(to_message(e), e.routing_key, mandatory=True)
                        for e in events
                    )
                )
        except PublishError as exc:
            raise SinkUnavailable("the broker returned an event", reason="unroutable") from exc
        except TimeoutError as exc:
            raise SinkUnavailable("no confirm from the broker", reason="broker_timeout") from exc
        except (AMQPError, OSError, RuntimeError) as exc:
            raise SinkUnavailable(f"broker error: {exc!r}", reason="broker_unavailable") from exc

    @property
    def ready(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._exchange = None
