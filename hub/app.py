"""The one wiring module: parsers, sinks and the web app put together.

URLs (stable, documented in the README):
- ``/callbacks/<provider>/<secret>/<callback>``: one per provider callback style, behind the
  provider's secret (``hub urls`` lists them; see ``hub.secrets``); ``HEAD`` on one is a probe
  that keeps nothing (``hub check``)
- ``/metrics``: Prometheus exposition of the app's own registry
- ``/health/live``, ``/health/ready``
- ``/events?pattern=...``: Server-Sent Events, with a broker and ``HUB_EVENTS_TOKEN`` set
- ``/api/v1/...``: the operator's JSON API (``hub.api``), behind the console token
  (``hub.operator``); its OpenAPI document at ``/api/v1/openapi.json``
- ``/console/...``: the operator's console (``hub.console``), behind the same token

Beside the routes, in the same loop: the pipeline worker (unless in a process of its own), the
retention task and the pull sources (``hub.pull``), each a cleanup context.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from core.errors import SinkUnavailable
from hub import api, backlog, console, disk, handlers, logs, operator, readmodel, requestline, sse
from hub.endpoints import endpoints
from hub.forward_process import ForwarderProcess, sink_of, worker
from hub.handlers import FORWARDER, JOURNAL, RUNTIME, Runtime
from hub.pull import sources as pull_sources
from hub.pull.poller import Poller
from hub.secrets import resolve as resolve_secrets
from hub.settings import Settings
from parsers import REGISTRY
from sinks import index, progress
from sinks import journal as store
from sinks.base import Sink
from sinks.index import IndexCollector
from sinks.journal import Journal
from sinks.metrics import Metrics
from sinks.progress import ProgressCollector

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, sink: Sink | None = None) -> web.Application:
    """The hub. ``sink`` replaces the configured broker (tests pass an in-memory sink)."""
    requestline.install()  # raw 8-bit bytes, NUL, spaces in a provider's URL: not a 400
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[handlers.observe_http, operator.guard],
    )
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    secrets = resolve_secrets(settings.configured_secrets(), settings.data_dir)
    logs.hide(s for accepted in secrets.values() for s in accepted)
    if settings.events_token:
        logs.hide([settings.events_token.get_secret_value()])
    logs.hide(pull_sources.secrets(settings))
    console_token = settings.console_token.get_secret_value() if settings.console_token else None
    app[operator.OPERATOR_TOKEN] = operator.resolve(console_token, settings.data_dir)
    logs.hide([app[operator.OPERATOR_TOKEN]])
    app[RUNTIME] = Runtime(metrics=metrics, secrets=secrets, access=settings.access_policy())
    for endpoint in endpoints():
        handler = handlers.callback_handler(endpoint.module, endpoint.callback)
        for method in endpoint.callback.methods:
            app.router.add_route(method, endpoint.route, handler)
        probe = handlers.probe_handler(endpoint.module, endpoint.callback)
        app.router.add_route("HEAD", endpoint.route, probe)
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
    api.setup(app, settings)
    console.setup(app, settings)
    app.on_shutdown.append(_drain)
    # one context per resource, opened in this order and closed in the reverse one
    app.cleanup_ctx.append(_read_model(settings))
    app.cleanup_ctx.append(_journal(settings, sink))
    # the pipeline worker, with a broker or without: a process of its own, or in this loop
    if sink is None and settings.forwarder == "process":
        app.cleanup_ctx.append(_forwarder_process(settings))
    else:
        app.cleanup_ctx.append(_forwarder_inline(settings, sink))
    app.cleanup_ctx.append(_retention(settings, sink))
    app.cleanup_ctx.append(_pull(settings))
    return app


async def _drain(app: web.Application) -> None:
    """Shutdown begun (SIGTERM): readiness goes false while requests in flight finish."""
    app[RUNTIME].draining = True


def _read_model(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """What the API and the console look events up in: this hub's index, or with
    ``HUB_INDEX_URL`` every replica's (its own small pool of connections, closed at shutdown)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with readmodel.opened(settings) as model:
            app[readmodel.READ_MODEL] = model
            yield

    return ctx


def _journal(
    settings: Settings, sink: Sink | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The journal, and the metrics that read it and the worker's files (its index, its progress
    file; the backlog from the journal and the progress file, ``hub.backlog``)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        metrics = runtime.metrics
        journal = Journal.open(
            settings.data_dir,
            max_bytes=settings.journal_max_bytes,
            commit_timeout=settings.journal_commit_timeout,
            on_commit=metrics.journal_commit.observe,
            also_counted=disk.worker_files(settings.data_dir),  # the cap counts them too
        )
        try:
            app[JOURNAL] = journal
            metrics.journal_ready.set_function(lambda: float(journal.ready))
            metrics.count_quarantine(partial(store.quarantine_waiting, journal.path))
            providers = [p.value for p in REGISTRY]
            forwarding = _forwarding(settings, sink)
            metrics.registry.register(IndexCollector(settings.data_dir, providers))
            metrics.registry.register(
                ProgressCollector(
                    settings.data_dir,
                    providers,
                    forwarding=forwarding,
                    shared=settings.index_url is not None,
                )
            )
            metrics.registry.register(
                backlog.BacklogCollector(settings.data_dir, journal.path, forwarding=forwarding)
            )
            yield
        finally:
            journal.close()  # on the loop: it commits what waits

    return ctx


def _forwarding(settings: Settings, sink: Sink | None) -> bool:
    """Events go somewhere from the journal: to a broker, or to the sink a test gave."""
    return sink is not None or backlog.forwarding(settings)


def _forwarder_process(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """``hub forward``, the pipeline worker in a process of its own (the default)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        child = ForwarderProcess(settings)
        child.start()
        try:
            yield
        finally:
            await child.stop()

    return ctx


def _forwarder_inline(
    settings: Settings, sink: Sink | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The pipeline worker in the hub's own loop (``inline``), to ``sink`` (tests), the broker,
    or none."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        journal = app[JOURNAL]  # the journal's context runs first
        target = sink if sink is not None else _started_broker(settings)
        try:
            with worker(settings, journal.path, target) as forwarder:
                forwarder.start()
                app[FORWARDER] = forwarder
                try:
                    yield
                finally:
                    await forwarder.stop(settings.drain_timeout)
        finally:
            if target is not None:
                await target.close()

    return ctx


def _retention(
    settings: Settings, sink: Sink | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The retention task; awaited at shutdown, and logged if it ever fails."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        journal = app[JOURNAL]  # the journal's context runs first
        task = asyncio.get_running_loop().create_task(
            _prune_forever(journal, settings, forwarding=_forwarding(settings, sink)),
            name="retention",
        )
        task.add_done_callback(_log_failure)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # a failure was logged already

    return ctx


USER_AGENT = "callback-hub (pull sources)"


def _pull(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """The pull sources (``hub.pull``): one task per configured source, on one HTTP client
    session; cancelled at shutdown before the worker and the journal close (a poll cut short
    leaves its cursor where it was: it is asked again)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        metrics = app[RUNTIME].metrics
        sources = pull_sources.configured(settings)
        on = {s.provider for s in sources}
        metrics.start_pull((p.value, p in on) for p in pull_sources.KNOWN)
        if not sources:
            yield
            return
        journal = app[JOURNAL]  # the journal's context runs first

        def notify() -> None:
            forwarder = app.get(FORWARDER)
            if forwarder is not None:
                forwarder.notify()

        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            tasks = []
            for source in sources:
                poller = Poller(
                    source,
                    journal=journal,
                    metrics=metrics,
                    session=session,
                    data_dir=settings.data_dir,
                    notify=notify,
                )
                metrics.watch_pull(source.name, partial(_last_success, poller))
                task = asyncio.get_running_loop().create_task(
                    poller.run(), name=f"pull-{source.name}"
                )
                task.add_done_callback(_log_failure)
                tasks.append(task)
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    return ctx


def _last_success(poller: Poller) -> float | None:
    return poller.last_success


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task %s failed: %r", task.get_name(), exc)


async def _prune_forever(journal: Journal, settings: Settings, *, forwarding: bool) -> None:
    """Applies the retentions now, then every hour: the journal's (to events the pipeline worker
    processed: indexed, and with a broker confirmed) and the quarantine's (to replayed requests
    only)."""
    while True:
        up_to = index.read(settings.data_dir).cursor
        if forwarding:
            up_to = min(up_to, progress.cursor(settings.data_dir))
        try:
            deleted = await journal.prune(time.time() - settings.retention, forwarded_up_to=up_to)
            dropped = await journal.prune_quarantine(time.time() - settings.quarantine_retention)
        except SinkUnavailable as exc:
            log.warning("journal retention not applied: %s", exc.reason)
        else:
            if deleted:
                log.info(
                    "retention: %d events older than %.0f s deleted", deleted, settings.retention
                )
            if dropped:
                log.info(
                    "retention: %d quarantined requests replayed over %.0f s ago deleted",
                    dropped,
                    settings.quarantine_retention,
                )
        await asyncio.sleep(3600)


def _started_broker(settings: Settings) -> Sink | None:
    """The broker, when the worker runs in the hub's own loop (``HUB_FORWARDER=inline``); none
    without ``HUB_RABBITMQ_URL``."""
    if settings.rabbitmq_url is None:
        return None
    sink = sink_of(settings)
    sink.start()
    return sink
