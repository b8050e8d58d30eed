"""The reference servers the hub is compared with, run as ``python -m bench.refs KIND PORT [URL]``.

- ``bare``: aiohttp answering every GET and POST at once (``validation``), after reading the body:
  the ceiling of an aiohttp server on this machine.
- ``naive``: the design the journal replaced: the provider's parser, then each event published to
  RabbitMQ (persistent, mandatory) and its confirm awaited inside the handler, then the provider's
  acknowledgement. Same parsers, same sink class as the hub.
- ``parse``: parse-and-answer: the request view built, the provider's parser, each event
  serialized as the journal takes it (:class:`Envelope`: JSON and routing key), the provider's
  answer; no journal, no secret check, no metrics. The ceiling of the hub's ingest: how close
  the hub is to parsing alone.

All run under the hub's loop policy (uvloop when installed), with no access log, like
``hub serve``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from core.errors import HubError, PayloadError
from core.models import Envelope, Provider, RawRequest, Reply, utc_now
from parsers import REGISTRY
from sinks.rabbitmq import RabbitMQSink

VALIDATION = b"validation"


def install_uvloop() -> None:
    """The policy ``hub serve`` installs (``hub.cli``): uvloop when available."""
    try:
        import uvloop  # optional, as in the hub
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def bare_app() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=VALIDATION, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def raw_request(request: web.Request, provider: Provider, body: bytes) -> RawRequest:
    """The request view, built as the hub builds it (``hub.handlers.raw_request``)."""
    _, _, query = request.raw_path.partition("?")
    return RawRequest(
        provider=provider,
        callback=request.match_info["callback"],
        method=request.method,
        query=query.encode("utf-8", "surrogateescape"),
        body=body,
        content_type=request.headers.get("Content-Type", ""),
        received_at=utc_now(),
    )


def response(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        charset=reply.charset,
    )


def parse_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        module = REGISTRY[Provider(request.match_info["provider"])]
        raw = raw_request(request, module.PROVIDER, await request.read())
        try:
            events = module.parse(raw)
            for event in events:
                Envelope.of(event)  # what the journal writes: the JSON and the routing key
            reply = module.ack(events)
        except PayloadError as exc:
            reply = module.nack(exc)
        return response(reply)

    app = web.Application()
    app.router.add_route("*", "/callbacks/{provider}/{secret}/{callback}", handle)
    return app


def naive_app(url: str) -> web.Application:
    sink = RabbitMQSink(url)

    async def broker(app: web.Application) -> AsyncIterator[None]:
        sink.start()
        async with asyncio.timeout(30):
            await sink.wait_connected()
        yield
        await sink.close()

    async def handle(request: web.Request) -> web.Response:
        module = REGISTRY[Provider(request.match_info["provider"])]
        raw = raw_request(request, module.PROVIDER, await request.read())
        try:
            events = module.parse(raw)
            await sink.publish([Envelope.of(e) for e in events])
            reply = module.ack(events)
        except HubError as exc:
            reply = module.retry(exc)
        return response(reply)

    app = web.Application()
    app.router.add_route("*", "/callbacks/{provider}/{secret}/{callback}", handle)
    app.cleanup_ctx.append(broker)
    return app


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    install_uvloop()
    apps = {"bare": bare_app, "parse": parse_app, "naive": lambda: naive_app(argv[2])}
    app = apps[kind]()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
