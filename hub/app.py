"""The one wiring module: parsers, sinks and the web app put together.

URLs (stable, documented in the README):
- ``/callbacks/<provider>/<callback>``: one per provider callback style (``hub urls`` lists them)
- ``/metrics``: Prometheus exposition of the app's own registry
- ``/health/live``, ``/health/ready``
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from hub import handlers
from hub.handlers import RUNTIME, Runtime
from hub.models import Provider
from hub.settings import Settings
from parsers import REGISTRY
from parsers.base import Callback, ParserModule
from sinks.base import Sink
from sinks.journal import Journal, JournalSink
from sinks.metrics import Metrics
from sinks.rabbitmq import RabbitMQSink

MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Endpoint:
    provider: Provider
    module: ParserModule
    callback: Callback

    @property
    def path(self) -> str:
        return f"/callbacks/{self.provider.value}/{self.callback.name}"


def endpoints() -> Iterator[Endpoint]:
    """Every provider callback the hub answers, in registry order."""
    for provider, module in REGISTRY.items():
        for callback in module.CALLBACKS:
            yield Endpoint(provider, module, callback)


def create_app(settings: Settings, *, sink: Sink | None = None) -> web.Application:
    """The hub. ``sink`` replaces the configured one (tests pass an in-memory sink)."""
    app = web.Application(client_max_size=MAX_BODY)
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    app[RUNTIME] = Runtime(metrics=metrics)
    for endpoint in endpoints():
        handler = handlers.callback_handler(endpoint.module, endpoint.callback)
        for method in endpoint.callback.methods:
            app.router.add_route(method, endpoint.path, handler)
    metrics.start_at_zero((e.provider.value, e.callback.name) for e in endpoints())
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/health/live", handlers.live)
    app.router.add_get("/health/ready", handlers.ready)
    app.cleanup_ctx.append(_storage(settings, sink))
    return app


def _storage(
    settings: Settings, sink: Sink | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        journal = Journal.open(settings.data_dir)
        runtime.journal = journal
        runtime.sink = sink or _configured_sink(settings, journal)
        yield
        runtime.draining = True
        await runtime.sink.close()
        await asyncio.to_thread(journal.close)

    return ctx


def _configured_sink(settings: Settings, journal: Journal) -> Sink:
    if settings.rabbitmq_url is None:
        return JournalSink(journal)
    sink = RabbitMQSink(
        settings.rabbitmq_url, exchange=settings.exchange, publish_timeout=settings.publish_timeout
    )
    sink.start()
    return sink
