"""``hub serve`` (the hub) and ``hub forward`` (its forwarder, alone)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from functools import partial

from hub import forward_process, logs, server
from hub.app import create_app
from hub.cli.common import journal_path, quiet_broker_clients, shared_index_missing
from hub.cli.console import announce
from hub.fastpath import Front
from hub.handlers import RUNTIME
from hub.operator import OPERATOR_TOKEN
from hub.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the hub (configured by HUB_* variables)")
    serve.set_defaults(run=serve_command)

    forward = commands.add_parser(
        "forward", help="forward the journal to the broker (hub serve starts it with a broker)"
    )
    forward.add_argument("--parent", type=int, help="stop when this process is gone")
    forward.set_defaults(run=forward_command)


def serve_command(args: argparse.Namespace) -> int:
    settings = Settings()
    if shared_index_missing(settings):
        return 2
    logs.configure(settings.log_level)
    quiet_broker_clients()  # with HUB_FORWARDER=inline, the worker's broker is in this process
    _install_uvloop()
    app = create_app(settings)
    _tune_gc()
    try:
        server.run(
            app,
            settings.host,
            settings.port,
            settings.limits(),
            registry=app[RUNTIME].metrics.registry,
            listening=partial(announce, settings, app[OPERATOR_TOKEN]),
            front=partial(Front, app),
        )
    except server.CannotListen as exc:
        print(f"hub serve: {exc} (HUB_HOST, HUB_PORT)", file=sys.stderr)
        return 1
    return 0


def forward_command(args: argparse.Namespace) -> int:
    settings = Settings()
    if shared_index_missing(settings):
        return 2
    if journal_path(settings) is None:  # nothing to process, ever (hub serve made it first)
        return 1
    logs.configure(settings.log_level)
    quiet_broker_clients()  # the worker says once that the broker is away, once that it is back
    _install_uvloop()
    _tune_gc()
    return asyncio.run(forward_process.run(settings, parent=args.parent))


GC_YOUNG_THRESHOLD = 20_000
"""Tracked objects allocated and not freed between two collections of the youngest generation.

Python's default, 700, is fewer than the objects that requests in flight hold: under load the
collector ran a hundred times a second, each time walking live requests' objects, for nothing
(they are freed by reference counting). Measured on a GET at 1.4k requests/s: 0.65 ms per
collection, and a full collection of the startup objects took 43 ms, the p99 latency. Garbage
cycles are still collected, once 20 000 objects have piled up."""


def _tune_gc() -> None:
    """Startup objects (modules, app, tables) out of the collector's way, and fewer, useful
    collections of the young generation."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _install_uvloop() -> None:
    try:
        import uvloop  # optional: not on every platform
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
