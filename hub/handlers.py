"""HTTP handlers: provider callbacks, metrics, health.

A callback goes: request → :class:`RawRequest` → the provider's parser → the journal (events
appended and synced, in one sync shared with every callback waiting meanwhile) → the provider's
acknowledgement. Nothing else: retries, counts by event, the index and the broker are the
pipeline worker's (``hub.forwarder``), after the answer. Input the parser refuses is
quarantined in the journal before the provider gets its negative answer; if even that fails,
the provider is told to retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.errors import HubError, PayloadError, SinkUnavailable
from core.models import Event, RawRequest, Reply, utc_now
from hub import intake, secrets
from hub.access import AccessPolicy
from hub.forwarder import Forwarder
from hub.secrets import Secrets
from parsers.base import Callback, ParserModule
from sinks.journal import Journal, QuarantineEntry
from sinks.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Runtime:
    """What the handlers use that the app has from its creation (see ``hub.app``)."""

    metrics: Metrics
    secrets: Secrets
    access: AccessPolicy
    draining: bool = field(default=False)


RUNTIME = web.AppKey("runtime", Runtime)
JOURNAL = web.AppKey("journal", Journal)
"""The journal, opened by its cleanup context before the app serves anything."""
FORWARDER = web.AppKey("forwarder", Forwarder)
"""The pipeline worker in the hub's own loop, when it runs there (``HUB_FORWARDER=inline``, a
test's sink)."""


class ClientClosedRequest(web.HTTPClientError):
    """The client went away before its request was read whole: no one to answer. Counted as
    nginx counts it, 499, and never a 500: it is no failure of ours."""

    status_code = 499


def raw_request(
    request: web.Request, module: ParserModule, callback: Callback, body: bytes
) -> RawRequest:
    _, _, query = request.raw_path.partition("?")
    return RawRequest(
        provider=module.PROVIDER,
        callback=callback.name,
        method=request.method,
        query=query.encode("utf-8", "surrogateescape"),
        body=body,
        content_type=request.headers.get("Content-Type", ""),
        received_at=utc_now(),
    )


def callback_handler(module: ParserModule, callback: Callback) -> Handler:
    """The routed handler of a callback (what the router and its middlewares call)."""
    direct = direct_handler(module, callback)

    async def handle(request: web.Request) -> web.StreamResponse:
        return await direct(request.app, request, request.match_info["secret"])

    return handle


DirectHandler = Callable[[web.Application, web.Request, str], Awaitable[web.StreamResponse]]


def direct_handler(module: ParserModule, callback: Callback) -> DirectHandler:
    """A callback's handler given the app and the URL's secret: what :mod:`hub.fastpath` calls
    without the router, and the routed handler calls with the route's."""
    provider, endpoint = module.PROVIDER.value, callback.name

    async def handle(app: web.Application, request: web.Request, secret: str) -> web.StreamResponse:
        started = time.perf_counter()
        runtime = app[RUNTIME]
        _admit(runtime, request, module, endpoint, secret)
        try:  # a request without a body (a GET, nearly always) has nothing to read
            body = await request.read() if request.body_exists else b""
        except (ConnectionError, asyncio.CancelledError) as exc:
            # The client closed the connection mid-body (aiohttp cancels the handler instead
            # when run with handler_cancellation, as its test server is): nothing to keep.
            runtime.metrics.callbacks(provider, endpoint, "disconnected", "").inc()
            log.info("%s/%s: the client went away before its request was read", provider, endpoint)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ClientClosedRequest() from None
        raw = raw_request(request, module, callback, body)
        answered = await respond(app, module, raw, request.headers, started)
        return _response(answered.reply)

    return handle


@dataclass(slots=True)
class Answered:
    """What became of a request read whole (slots, not frozen: one per callback, made cheap)."""

    reply: Reply
    """What the provider hears."""
    events: Sequence[Event]
    """The events journaled (none when refused)."""
    outcome: str
    """``accepted``, ``rejected`` or ``unavailable`` (``hub_callbacks_total``)."""
    reason: str
    quarantined: int | None = None
    """The quarantine number of a refused request that was kept."""


async def respond(
    app: web.Application,
    module: ParserModule,
    raw: RawRequest,
    headers: Mapping[str, str],
    started: float,
) -> Answered:
    """A request read whole to the provider's answer: parsed, journaled or quarantined (with
    ``headers``), counted; ``started`` is its arrival (``time.perf_counter()``). The callbacks'
    path, and the console's test callbacks' (``hub.console.setup_page``)."""
    provider, endpoint = module.PROVIDER.value, raw.callback
    metrics = app[RUNTIME].metrics
    reason, number = "", None
    events: list[Event] = []
    try:  # parsed and journaled (a provider's retry too: the worker recognizes it later)
        parsed = intake.parse(module, raw)  # whatever goes wrong in there is the input's fault
        if parsed:  # awaited here, not in a coroutine of its own: this runs on every callback
            await intake.append(app[JOURNAL], raw, parsed)
            forwarder = app.get(FORWARDER)
            if forwarder is not None:
                forwarder.notify()
        reply, outcome, events = module.ack(parsed), "accepted", parsed
    except PayloadError as exc:  # their input, parser bugs included (``hub.intake``)
        outcome, reason = "rejected", exc.reason
        reply, number = await _refuse(app, headers, module, raw, exc)
    except SinkUnavailable as exc:
        outcome, reason = "unavailable", exc.reason
        log.warning(
            "%s/%s: events not safe (%s), provider told to retry",
            provider,
            endpoint,
            exc.reason,
        )
        reply = module.retry(exc)
    except Exception as exc:  # a bug of ours past the parser: keep the input, ask for a retry
        log.error("%s/%s: unexpected error: %s", provider, endpoint, intake.where(exc))
        error = SinkUnavailable("internal error", reason="internal_error")
        outcome, reason = "unavailable", error.reason
        reply, number = await _refuse(app, headers, module, raw, error)
    metrics.callbacks(provider, endpoint, outcome, reason).inc()
    metrics.latency(provider, endpoint).observe(time.perf_counter() - started)
    return Answered(reply, events, outcome, reason, number)


def probe_handler(module: ParserModule, callback: Callback) -> Handler:
    """HEAD on a callback URL: a 200 without a body once the secret and the source pass (404
    and 403 as for a callback otherwise). Nothing is read, kept or counted as a callback: it is
    how ``hub check`` sees from outside that a URL answers and its secret is the right one."""

    async def probe(request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME]
        _admit(runtime, request, module, callback.name, request.match_info["secret"])
        return web.Response()

    return probe


def _admit(
    runtime: Runtime, request: web.Request, module: ParserModule, endpoint: str, secret: str
) -> None:
    """The secret (a stranger gets a 404), then the source address (403 if not allowed)."""
    if not secrets.matches(secret, runtime.secrets[module.PROVIDER]):
        runtime.metrics.callbacks(module.PROVIDER.value, endpoint, "unauthorized", "secret").inc()
        raise web.HTTPNotFound()
    if runtime.access.restricts(module.PROVIDER):
        client = runtime.access.client(
            request.remote, request.headers.getall("X-Forwarded-For", ())
        )
        if not runtime.access.allows(module.PROVIDER, client):
            provider = module.PROVIDER.value
            runtime.metrics.callbacks(provider, endpoint, "unauthorized", "source").inc()
            allow = f"HUB_ALLOW_{provider.upper()}"
            # only a caller who knows the secret hears it: the provider, or an operator trying
            log.warning(
                "%s/%s: refused a request from %s: not in %s (add it there to allow it)",
                provider,
                endpoint,
                client,
                allow,
            )
            raise web.HTTPForbidden(text=f"403: Forbidden: this source address is not in {allow}")


async def _refuse(
    app: web.Application,
    received: Mapping[str, str],
    module: ParserModule,
    raw: RawRequest,
    error: HubError,
) -> tuple[Reply, int | None]:
    """Keeps the request in the quarantine, then gives the provider its negative answer (and
    the request's quarantine number)."""
    try:
        number = await app[JOURNAL].quarantine(QuarantineEntry.of(raw, error.reason, received))
    except SinkUnavailable as exc:
        log.error("%s: could not quarantine a refused request (%s)", raw.provider.value, exc.reason)
        return module.retry(exc), None
    log.info(
        "%s/%s: refused (%s), quarantined as #%d",
        raw.provider.value,
        raw.callback,
        error.reason,
        number,
    )
    if isinstance(error, PayloadError):
        return module.nack(error), number
    return module.retry(error), number


def _response(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status, body=reply.body, content_type=reply.content_type, charset=reply.charset
    )


async def metrics(request: web.Request) -> web.Response:
    """In a thread: with a broker, collecting reads the journal's files (the backlog), which
    waits for as long as the disk stalls; the event loop must not."""
    registry = request.app[RUNTIME].metrics.registry
    body = await asyncio.to_thread(generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def live(request: web.Request) -> web.Response:
    """The event loop answers."""
    return web.Response(text="ok")


async def ready(request: web.Request) -> web.Response:
    """Callbacks can be made safe now: the journal is open and the hub is not shutting down.

    Neither the broker nor the shared index (``HUB_INDEX_URL``) is a condition: while either
    is away, callbacks are still acknowledged and their events wait in the journal (the worker
    catches up in order once it is back); ``/metrics`` (``hub_broker_connected``,
    ``hub_shared_index_connected``) and ``/api/v1/status`` say so, and alerts fire on them.
    A replica taken out of its load balancer for it would only move its callbacks onto others
    that, reaching the same database, wait as well.
    """
    checks = {
        "journal": request.app[JOURNAL].ready,
        "not_draining": not request.app[RUNTIME].draining,
    }
    status = 200 if all(checks.values()) else 503
    return web.json_response(checks, status=status, dumps=lambda o: orjson.dumps(o).decode())


@web.middleware
async def observe_http(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every request by route pattern (bounded), method and status."""
    started = time.perf_counter()
    info = request.match_info.route.resource
    route = info.canonical if info is not None else "unmatched"
    metrics = request.app[RUNTIME].metrics
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except BaseException as exc:
        status = raised_status(exc)
        raise
    finally:
        count_http(metrics, route, request.method, status, started)


def raised_status(exc: BaseException) -> int:
    """The status a request is counted with when its handler raised ``exc``: an HTTP error's
    own, 499 when the client went away (handler cancellation) or at shutdown, 500 otherwise."""
    if isinstance(exc, web.HTTPException):
        return exc.status
    if isinstance(exc, asyncio.CancelledError):
        return ClientClosedRequest.status_code
    return 500


def count_http(metrics: Metrics, route: str, method: str, status: int, started: float) -> None:
    """Counts one request answered, ``started`` its arrival (``time.perf_counter()``): the
    ``finally`` of :func:`observe_http` and of the callbacks' fast path (``hub.fastpath``),
    which answers without the middleware."""
    metrics.http_requests(route, method, str(status)).inc()
    metrics.http_latency(route).observe(time.perf_counter() - started)
