"""The reference servers the hub is compared with, run as ``python -m bench.refs KIND PORT [URL]``.

- ``bare``: aiohttp answering every GET and POST at once (``validation``), after reading the body:
  the ceiling of an aiohttp server on this machine.
- ``naive``: the design the journal replaced: the provider's parser, then each event published to
  RabbitMQ (persistent, mandatory) and its confirm awaited inside the handler, then the provider's
  acknowledgement. Same parsers, same sink class as the hub.

Both run under the hub's loop policy (uvloop when installed), with no access log, like
``hub serve``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from core.errors import HubError
from core.models import Envelope, Provider, RawRequest, utc_now
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
        _, _, query = request.raw_path.partition("?")
        raw = RawRequest(
            provider=module.PROVIDER,
            callback=request.match_info["callback"],
            method=request.method,
            query=query.encode("utf-8", "surrogateescape"),
            body=await request.read(),
            content_type=request.headers.get("Content-Type", ""),
            received_at=utc_now(),
        )
        try:
            events = module.parse(raw)
            await sink.publish([Envelope.of(e) for e in events])
            reply = module.ack(events)
        except HubError as exc:
            reply = module.retry(exc)
        return web.Response(
            status=reply.status,
            body=reply.body,
            content_type=reply.content_type,
            charset=reply.charset,
        )

    app = web.Application()
    app.router.add_route("*", "/callbacks/{provider}/{secret}/{callback}", handle)
    app.cleanup_ctx.append(broker)
    return app


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    install_uvloop()
    app = bare_app() if kind == "bare" else naive_app(argv[2])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
