"""Server-Sent Events: ``GET /events?pattern=...`` for subscribers without an AMQP client.

Each request reads the stream ``<exchange>.stream`` from the next event (or from ``Last-Event-ID``
+ 1, or from ``?from=`` like ``hub subscribe --from``) and sends the events matching ``pattern``
(default ``#``), one CloudEvents JSON document per SSE ``data``, with ``id`` = the stream offset:
a client that reconnects with ``Last-Event-ID`` misses nothing the stream still keeps. A comment
line is sent every ``heartbeat`` seconds while nothing matches.

The token is a bearer token: ``Authorization: Bearer <token>`` or ``?token=<token>`` (browsers'
EventSource cannot send headers); a missing or wrong one gets 401. No stream or no broker: 503.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, ChannelNotFoundEntity
from aiohttp import web

from core.topics import check_pattern, matches
from hub.subscribe import Offset, parse_from
from sinks.rabbitmq import stream_name

log = logging.getLogger(__name__)

RETRY_MS = 2000
"""What the ``retry`` field tells EventSource clients to wait before reconnecting."""


class EventStream:
    """The endpoint's state: the broker connection (opened on first use) and open responses."""

    def __init__(
        self, url: str, exchange: str, token: str, *, heartbeat: float, prefetch: int
    ) -> None:
        self.url = url
        self.stream = stream_name(exchange)
        self.heartbeat = heartbeat
        self.prefetch = prefetch
        self._token = token.encode()
        self._connection: AbstractConnection | None = None
        self._connecting = asyncio.Lock()
        self._inboxes: set[asyncio.Queue[AbstractIncomingMessage | None]] = set()
        self._closing = False

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        yield
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def on_shutdown(self, app: web.Application) -> None:
        """Ends open responses, so that the server does not wait for them."""
        self._closing = True
        for inbox in self._inboxes:
            inbox.put_nowait(None)

    def refusal(self, request: web.Request) -> str | None:
        """Why the request may not read events (None: it may): no token, or a wrong one."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else request.query.get("token", "")
        if not given:
            return "a bearer token is needed (Authorization: Bearer <token>, or ?token=)"
        if not hmac.compare_digest(given.encode(), self._token):
            return "wrong token: not the events token (HUB_EVENTS_TOKEN)"
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if (refused := self.refusal(request)) is not None:
            raise web.HTTPUnauthorized(
                text=f"{refused}\n",
                headers={"WWW-Authenticate": 'Bearer realm="events"'},
            )
        try:
            pattern = check_pattern(request.query.get("pattern", "#"))
            start = _start(request)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        if self._closing:
            raise web.HTTPServiceUnavailable(text="shutting down\n")
        try:
            channel = await (await self._connect()).channel()
        except (AMQPError, OSError, TimeoutError) as exc:
            log.warning("events: broker not reachable (%s)", type(exc).__name__)
            raise web.HTTPServiceUnavailable(
                text="broker not reachable\n", headers={"Retry-After": "5"}
            ) from None
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._inboxes.add(inbox)
        response = web.StreamResponse(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        response.content_type = "text/event-stream"
        try:
            try:
                await self._consume(channel, inbox, start)
            except AMQPError as exc:
                raise web.HTTPServiceUnavailable(text=f"broker error: {exc}\n") from None
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            await self._pump(inbox, response, pattern)
        except ConnectionResetError:  # the client left
            pass
        finally:
            self._inboxes.discard(inbox)
            if not channel.is_closed:
                await channel.close()
        return response

    async def _connect(self) -> AbstractConnection:
        async with self._connecting:
            connection = self._connection
            if connection is None or connection.is_closed:
                async with asyncio.timeout(10):
                    connection = await aio_pika.connect(
                        self.url, client_properties={"connection_name": "callback-hub events"}
                    )
                self._connection = connection
            return connection

    async def _consume(
        self,
        channel: AbstractChannel,
        inbox: asyncio.Queue[AbstractIncomingMessage | None],
        start: Offset,
    ) -> None:
        def closed(*_: object) -> None:
            inbox.put_nowait(None)

        channel.close_callbacks.add(closed)
        await channel.set_qos(prefetch_count=self.prefetch)
        try:
            queue = await channel.get_queue(self.stream)
        except ChannelNotFoundEntity:
            raise web.HTTPServiceUnavailable(text=f"no stream {self.stream} yet\n") from None
        await queue.consume(inbox.put, arguments={"x-stream-offset": start})

    async def _pump(
        self,
        inbox: asyncio.Queue[AbstractIncomingMessage | None],
        response: web.StreamResponse,
        pattern: str,
    ) -> None:
        """Sends matching events until the channel closes or the app shuts down."""
        while True:
            try:
                async with asyncio.timeout(self.heartbeat):
                    message = await inbox.get()
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if message is None:
                return
            if matches(pattern, message.routing_key or ""):
                await response.write(frame(message))
            try:
                await message.ack()
            except (AMQPError, ChannelInvalidStateError):  # the channel is gone: the client
                return  # reconnects with Last-Event-ID


def frame(message: AbstractIncomingMessage) -> bytes:
    """One SSE event: ``id`` = the stream offset, ``data`` = the body (one line per line)."""
    offset = (message.headers or {}).get("x-stream-offset")
    head = f"id: {offset}\n".encode() if isinstance(offset, int) else b""
    data = b"".join(b"data: " + line + b"\n" for line in message.body.splitlines() or [b""])
    return head + data + b"\n"


def _start(request: web.Request) -> Offset:
    last = request.headers.get("Last-Event-ID", "").strip()
    if last:
        if not last.isdigit():
            raise ValueError(f"Last-Event-ID is a stream offset, not {last!r}")
        return int(last) + 1
    when = request.query.get("from")
    return parse_from(when) if when else "next"


EVENTS = web.AppKey("events", EventStream)


def setup(
    app: web.Application,
    *,
    rabbitmq_url: str,
    exchange: str,
    token: str,
    heartbeat: float = 15.0,
    prefetch: int = 100,
) -> None:
    """Adds ``GET /events`` to ``app``, with its broker connection closed at cleanup."""
    events = EventStream(rabbitmq_url, exchange, token, heartbeat=heartbeat, prefetch=prefetch)
    app[EVENTS] = events
    app.router.add_get("/events", events.handle)
    app.cleanup_ctx.append(events.ctx)
    app.on_shutdown.append(events.on_shutdown)
