"""The one wiring module: parsers, sinks and the web app put together.

URLs (stable, documented in the README):
- ``/callbacks/<provider>/<secret>/<callback>``: one per provider callback style, behind the
  provider's secret (``hub urls`` lists them; see ``hub.secrets``)
- ``/metrics``: Prometheus exposition of the app's own registry
- ``/health/live``, ``/health/ready``
- ``/events?pattern=...``: Server-Sent Events, with a broker and ``HUB_EVENTS_TOKEN`` set
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from hub import handlers, sse
from hub.errors import SinkUnavailable
from hub.forwarder import Forwarder
from hub.handlers import RUNTIME, Runtime
from hub.models import Provider
from hub.secrets import resolve as resolve_secrets
from hub.settings import Settings
from parsers import REGISTRY
from parsers.base import Callback, ParserModule
from sinks import journal as store
from sinks.base import Sink
from sinks.journal import Journal
from sinks.metrics import Metrics
from sinks.rabbitmq import RabbitMQSink, StreamRetention

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    provider: Provider
    module: ParserModule
    callback: Callback

    @property
    def route(self) -> str:
        """The route pattern (also the ``route`` label of HTTP metrics: no secret in it)."""
        return self.path("{secret}")

    def path(self, secret: str) -> str:
        return f"/callbacks/{self.provider.value}/{secret}/{self.callback.name}"


def endpoints() -> Iterator[Endpoint]:
    """Every provider callback the hub answers, in registry order."""
    for provider, module in REGISTRY.items():
        for callback in module.CALLBACKS:
            yield Endpoint(provider, module, callback)


def create_app(settings: Settings, *, sink: Sink | None = None) -> web.Application:
    """The hub. ``sink`` replaces the configured broker (tests pass an in-memory sink)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[handlers.observe_http]
    )
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    app[RUNTIME] = Runtime(
        metrics=metrics,
        secrets=resolve_secrets(settings.configured_secrets(), settings.data_dir),
        access=settings.access_policy(),
    )
    for endpoint in endpoints():
        handler = handlers.callback_handler(endpoint.module, endpoint.callback)
        for method in endpoint.callback.methods:
            app.router.add_route(method, endpoint.route, handler)
    metrics.start_at_zero((e.provider.value, e.callback.name) for e in endpoints())
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/health/live", handlers.live)
    app.router.add_get("/health/ready", handlers.ready)
    if settings.rabbitmq_url and settings.events_token:
        sse.setup(
            app,
            rabbitmq_url=settings.rabbitmq_url,
            exchange=settings.exchange,
            token=settings.events_token.get_secret_value(),
        )
    app.on_shutdown.append(_drain)
    app.cleanup_ctx.append(_storage(settings, sink))
    return app


async def _drain(app: web.Application) -> None:
    """Shutdown begun (SIGTERM): readiness goes false while requests in flight finish."""
    app[RUNTIME].draining = True


def _storage(
    settings: Settings, sink: Sink | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        metrics = runtime.metrics
        journal = Journal.open(
            settings.data_dir,
            dedup_window=settings.dedup_window,
            max_bytes=settings.journal_max_bytes,
            on_commit=metrics.journal_commit.observe,
        )
        runtime.journal = journal
        metrics.quarantined.set(store.stats(journal.path).quarantined)
        target = sink or _configured_sink(settings)
        forwarder = None
        if target is not None:
            forwarder = Forwarder(journal, target, metrics, batch=settings.forward_batch)
            forwarder.start()
            runtime.forwarder = forwarder
        metrics.watch(
            backlog=lambda: forwarder.backlog if forwarder else 0,
            oldest_age=lambda: _age(forwarder.oldest) if forwarder else 0,
            broker_up=(lambda: float(target.ready)) if target is not None else None,
        )
        pruning = asyncio.get_running_loop().create_task(
            _prune_forever(journal, settings, forwarded_only=target is not None)
        )
        yield
        runtime.draining = True
        pruning.cancel()
        if forwarder is not None:
            await forwarder.stop(settings.drain_timeout)
        if target is not None:
            await target.close()
        await asyncio.to_thread(journal.close)

    return ctx


def _age(since: float | None) -> float:
    return max(time.time() - since, 0.0) if since is not None else 0.0


async def _prune_forever(journal: Journal, settings: Settings, *, forwarded_only: bool) -> None:
    """Applies the retention now, then every hour."""
    while True:
        try:
            deleted = await journal.prune(
                time.time() - settings.retention, forwarded_only=forwarded_only
            )
        except SinkUnavailable as exc:
            log.warning("journal retention not applied: %s", exc.reason)
        else:
            if deleted:
                log.info(
                    "retention: %d events older than %.0f s deleted", deleted, settings.retention
                )
        await asyncio.sleep(3600)


def _configured_sink(settings: Settings) -> Sink | None:
    if settings.rabbitmq_url is None:
        return None
    retention = StreamRetention(settings.stream_max_age, settings.stream_max_bytes)
    sink = RabbitMQSink(
        settings.rabbitmq_url,
        exchange=settings.exchange,
        publish_timeout=settings.publish_timeout,
        stream=retention if settings.stream else None,
    )
    sink.start()
    return sink
