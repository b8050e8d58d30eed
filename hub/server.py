"""The HTTP server around the app: what a slow or hostile client may hold, and for how long.

aiohttp's defaults take every connection the kernel hands over and give a request's headers and
body all the time they want: a thousand clients sending a byte a second used up a hub's 1,024
file descriptors, and from then on every new connection — a provider's, a health check's — was
reset. Here:

- **Deadlines.** A connection's first request must have its headers in full within
  ``header_timeout`` of the connection's opening, a later one within ``header_timeout`` of its
  first bytes; each request's body must be in within ``body_timeout`` of its headers; an idle
  keep-alive connection is closed ``keepalive_timeout`` after the previous answer (aiohttp's own
  timer, which also closes one whose next request's headers are not in full by then). One timer
  per connection, armed at the opening and pushed later as requests come: it fires early and
  moves itself rather than being cancelled on the hot path (it is moved earlier only for a
  kept-alive connection's request whose headers come in pieces, which is rare).
- **A cap on open connections**, below the file descriptor limit by a reserve (the journal, the
  forwarder, the metrics, and the connections the kernel queues between two turns of the loop).
  At the cap, a new connection makes room by closing the connection that has been sending its
  first request the longest without sending all of it, else the one connected the longest ago
  that has sent nothing, else the one answered and idle the longest (keep-alive, or
  aiohttp reading the rest of a body the answer did not need), else the one whose body has been
  coming the longest; a request whose body is in is never closed for room. Only when every
  connection has one is the new one closed. So slow clients cannot lock out a provider or a
  health check: each new connection pushes the slowest one out.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

RequestHandlerFn = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
Front = Callable[[RequestHandlerFn], RequestHandlerFn]
"""Makes the server's request handler from the app's (``hub.fastpath.Front``)."""

BACKLOG = 128
"""Connections the kernel queues before the hub accepts them. The loop accepts all of them at
once before any can be closed, so the descriptor reserve counts them too."""


@dataclass(frozen=True)
class Limits:
    """What one connection may hold (seconds, counts); see the module's docstring."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    max_connections: int = 1024
    fd_reserve: int = 64

    def connection_cap(self, fd_limit: int) -> int:
        """The open connections allowed with ``fd_limit`` descriptors."""
        return max(1, min(self.max_connections, fd_limit - self.fd_reserve - BACKLOG))


def raise_fd_limit() -> int:
    """Raises the soft limit of file descriptors to the hard one (systemd's services get 1,024
    soft and 524,288 hard); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the file descriptor limit from %d", soft)
    return soft


class _Counters:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.open = Gauge("hub_http_connections", "HTTP connections open.", registry=registry)
        closed = Counter(
            "hub_http_connections_closed",
            "HTTP connections the hub closed on a client: header_timeout, body_timeout "
            "(too slow), evicted (the slowest, to make room at the cap), refused (at the cap, "
            "every connection busy).",
            ("reason",),
            registry=registry,
        )
        self.header_timeout = closed.labels("header_timeout")
        self.body_timeout = closed.labels("body_timeout")
        self.evicted = closed.labels("evicted")
        self.refused = closed.labels("refused")


_ABSENT = 0


class Guard:
    """The open connections, in the order they are to be closed to make room."""

    def __init__(self, limits: Limits, cap: int, registry: CollectorRegistry | None) -> None:
        self.limits = limits
        self.cap = cap
        self.counters = _Counters(registry)
        self.trickling: dict[Connection, None] = {}
        """Part of a first request, not all of it, oldest first: slow, surely."""
        self.fresh: dict[Connection, None] = {}
        """Nothing read yet, oldest first (a provider's new connection, until its request is
        read: at the cap, the connections accepted in one go all wait here a moment)."""
        self.used: dict[Connection, None] = {}
        """At least one request, the longest without a new one first."""
        self._warned_at: float | None = None

    def __len__(self) -> int:
        return len(self.trickling) + len(self.fresh) + len(self.used)

    def opened(self, conn: Connection) -> bool:
        """A new connection: False when it must be closed (at the cap, nothing to close)."""
        if len(self) >= self.cap and not self._make_room(conn):
            self.counters.refused.inc()
            return False
        self.fresh[conn] = None
        self.counters.open.inc()
        return True

    def trickled(self, conn: Connection) -> None:
        """Bytes of a first request, not all of it."""
        if self.fresh.pop(conn, _ABSENT) is None:
            self.trickling[conn] = None

    def requested(self, conn: Connection) -> None:
        """A request's headers are in: the connection goes last in line."""
        if self._remove(conn):
            self.used[conn] = None

    def closed(self, conn: Connection) -> None:
        if self._remove(conn):
            self.counters.open.dec()

    def _remove(self, conn: Connection) -> bool:
        return (
            self.used.pop(conn, _ABSENT) is None
            or self.fresh.pop(conn, _ABSENT) is None
            or self.trickling.pop(conn, _ABSENT) is None
        )

    def _make_room(self, newcomer: Connection) -> bool:
        now = newcomer.loop_time()
        if self._warned_at is None or now - self._warned_at > 60:
            self._warned_at = now
            log.warning(
                "%d connections open, the cap: the slowest are closed to make room "
                "(HUB_MAX_CONNECTIONS, and the file descriptor limit)",
                len(self),
            )
        victim = next(iter(self.trickling), None)
        if victim is None:
            victim = next(iter(self.fresh), None)
        if victim is None:  # at most the connections in a request are skipped
            victim = next((c for c in self.used if c.idle), None)
        if victim is None:  # the body that has been coming the longest
            victim = next((c for c in self.used if c.receiving), None)
        if victim is None:
            return False
        self.closed(victim)
        self.counters.evicted.inc()
        victim.force_close()
        return True


class Connection(RequestHandler):
    """aiohttp's protocol with the deadlines and the cap of :class:`Guard`."""

    __slots__ = ("_answered", "_deadline", "_guard", "_headers_due", "_timer", "_timer_at")

    def __init__(self, manager: Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._answered = False
        self._headers_due = True
        """Waiting for a request's headers (from the opening, or from a kept-alive
        connection's first bytes): the deadline is the headers'; else the body's."""

    def loop_time(self) -> float:
        return self._loop.time()

    @property
    def idle(self) -> bool:
        """Answered, and no request under way: idle in keep-alive, the next request's headers
        not in full yet, or aiohttp reading what is left of a body the answer did not need
        (its "lingering", up to 10 s: a 404 to a body that comes a byte a second)."""
        return self._answered and self._current_request is None and not self._messages

    @property
    def receiving(self) -> bool:
        """A request under way whose body is not in full yet."""
        request = self._current_request
        return request is not None and not request.content.is_eof()

    def log_access(self, request: Any, response: Any, time: float | None) -> None:
        """aiohttp calls this as each answer is sent (whatever the access log does)."""
        self._answered = True
        super().log_access(request, response, time)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.opened(self):
            self.force_close()
            return
        self._arm(self._loop.time() + self._guard.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:  # a request's headers are in: its body's deadline
            self._headers_due = self._answered = False
            self._arm(self._loop.time() + self._guard.limits.body_timeout)
            self._guard.requested(self)
        elif self._headers_due and not self._answered:  # part of a first request's headers
            self._guard.trickled(self)
        elif self._answered and not self._headers_due:
            # answered, and bytes that make no whole request: the next request's first bytes
            # on a kept-alive connection (rare: headers usually come in one piece), or the
            # rest of a body the answer did not need, which gets no longer either
            self._headers_due = True
            self._arm(self._loop.time() + self._guard.limits.header_timeout)

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is not None:
            if self._timer_at <= deadline:
                return  # fires early, and moves itself to the deadline
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_deadline)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard.closed(self)
        super().connection_lost(exc)

    def _on_deadline(self) -> None:
        self._timer = None
        if self._force_close or self.transport is None:
            return
        if self._loop.time() < self._deadline:  # pushed later since
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)
            return
        if self._headers_due:
            self._guard.counters.header_timeout.inc()
            self.force_close()
            return
        if self.receiving:
            self._guard.counters.body_timeout.inc()
            self.force_close()
        # otherwise the handler has the whole body, or the connection waits for its next
        # request (aiohttp's keep-alive timer closes it): the next request arms this again


class _Site(web.BaseSite):
    """A TCP site whose connections are :class:`Connection` objects."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, guard: Guard, front: Front | None
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host, self._port, self._guard, self._front = host, port, guard, front

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system, for port 0)."""
        return self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        kwargs = server._kwargs
        if self._front is not None:  # read by each connection as it is made
            server.request_handler = self._front(server.request_handler)
        loop = asyncio.get_running_loop()

        def connection() -> Connection:
            return Connection(server, self._guard, loop=loop, **kwargs)

        listening = await loop.create_server(
            connection, self._host, self._port, backlog=BACKLOG, reuse_address=True
        )
        self._server = listening
        self._port = int(listening.sockets[0].getsockname()[1])


class CannotListen(Exception):
    """The hub cannot listen where it is told to (a port already in use, an address that is
    not the machine's)."""


async def start(
    app: web.Application,
    host: str,
    port: int,
    limits: Limits,
    *,
    registry: CollectorRegistry | None = None,
    front: Front | None = None,
) -> tuple[web.AppRunner, int]:
    """Starts serving ``app``; returns its runner (``cleanup()`` stops it) and the port.

    ``front`` makes the request handler from the app's (``hub.fastpath``)."""
    fd_limit = raise_fd_limit()
    guard = Guard(limits, limits.connection_cap(fd_limit), registry)
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=limits.keepalive_timeout,
        shutdown_timeout=60.0,
    )
    await runner.setup()
    site = _Site(runner, host, port, guard, front)
    try:
        await site.start()
    except OSError as exc:  # the port is taken, the address not ours: the app is stopped again
        await runner.cleanup()
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    log.info(
        "serving on %s: at most %d connections (%d file descriptors), headers within %g s, "
        "bodies within %g s, keep-alive %g s",
        site.name,
        guard.cap,
        fd_limit,
        limits.header_timeout,
        limits.body_timeout,
        limits.keepalive_timeout,
    )
    return runner, site.port


def run(
    app: web.Application,
    host: str,
    port: int,
    limits: Limits,
    *,
    registry: CollectorRegistry | None = None,
    listening: Callable[[int], None] | None = None,
    front: Front | None = None,
) -> None:
    """``hub serve``: serves until SIGTERM or SIGINT, then stops gracefully (readiness false,
    no new connections, requests in flight finish, the app's cleanup runs). ``listening`` is
    called with the port once the hub listens."""
    asyncio.run(_serve(app, host, port, limits, registry, listening, front))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    limits: Limits,
    registry: CollectorRegistry | None,
    listening: Callable[[int], None] | None,
    front: Front | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner, bound = await start(app, host, port, limits, registry=registry, front=front)
    if listening is not None:
        listening(bound)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
