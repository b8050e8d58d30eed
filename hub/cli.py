"""``hub`` command line: serve, tail, urls. The only reader of the environment."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

import hub.subscribe
from core.display import describe
from core.models import Event, Kind, Provider
from hub import forward_process, logs, quarantine, server
from hub.app import create_app, endpoints
from hub.handlers import RUNTIME
from hub.secrets import resolve as resolve_secrets
from hub.settings import Settings
from sinks import journal as journal_store


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Provider callbacks in, events out.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the hub (configured by HUB_* variables)")
    serve.set_defaults(run=serve_command)

    forward = commands.add_parser(
        "forward", help="forward the journal to the broker (hub serve starts it with a broker)"
    )
    forward.add_argument("--parent", type=int, help="stop when this process is gone")
    forward.set_defaults(run=forward_command)

    tail = commands.add_parser("tail", help="show events as they arrive")
    tail.add_argument("-n", "--lines", type=int, default=10, help="past events to show first")
    tail.add_argument("--json", action="store_true", help="one CloudEvents JSON document a line")
    tail.add_argument("--no-follow", action="store_true", help="stop after the past events")
    tail.add_argument("--pattern", default="#", help="routing pattern (broker mode)")
    tail.set_defaults(run=tail_command)

    replay = commands.add_parser(
        "replay", help="publish journaled events to the broker again (HUB_RABBITMQ_URL)"
    )
    replay.add_argument("--since", type=_moment, help="received at or after (ISO 8601)")
    replay.add_argument("--until", type=_moment, help="received before (ISO 8601)")
    replay.add_argument("--provider", choices=[p.value for p in Provider])
    replay.add_argument("--kind", choices=[k.value for k in Kind])
    replay.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    replay.set_defaults(run=replay_command)

    journal = commands.add_parser("journal", help="the local journal")
    journal_commands = journal.add_subparsers(required=True, metavar="COMMAND")
    journal_stats = journal_commands.add_parser("stats", help="backlog, duplicates, quarantine")
    journal_stats.add_argument("--json", action="store_true")
    journal_stats.set_defaults(run=journal_stats_command)

    quarantine.add_command(commands)

    urls = commands.add_parser("urls", help="the callback URLs to give each provider")
    urls.add_argument(
        "--base", required=True, help="the hub's public URL, e.g. https://hooks.example.com"
    )
    urls.set_defaults(run=urls_command)
    hub.subscribe.add_command(commands)
    return parser


def serve_command(args: argparse.Namespace) -> int:
    settings = Settings()
    logs.configure(settings.log_level)
    _install_uvloop()
    app = create_app(settings)
    _tune_gc()
    server.run(
        app,
        settings.host,
        settings.port,
        settings.limits(),
        registry=app[RUNTIME].metrics.registry,
    )
    return 0


def forward_command(args: argparse.Namespace) -> int:
    settings = Settings()
    logs.configure(settings.log_level)
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


def urls_command(args: argparse.Namespace) -> int:
    """One line per callback URL, with the provider's current secret."""
    settings = Settings()
    secrets = resolve_secrets(settings.configured_secrets(), settings.data_dir)
    base = args.base.rstrip("/")
    for endpoint in endpoints():
        methods = ",".join(endpoint.callback.methods)
        url = base + endpoint.path(secrets[endpoint.provider][0])
        print(
            f"{endpoint.provider.value:<10} {endpoint.callback.name:<13} {methods:<9} {url}"
            f"    # {endpoint.callback.summary}"
        )
    return 0


def _show(event_json: bytes, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(event_json.decode() + "\n")
    else:
        sys.stdout.write(describe(Event.from_json(event_json)) + "\n")
    sys.stdout.flush()


def tail_command(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.rabbitmq_url:
        return asyncio.run(_tail_broker(settings, args))
    path = _journal_path(settings)
    return _tail_journal(path, args) if path else 1


def _journal_path(settings: Settings) -> Path | None:
    path = settings.data_dir / journal_store.JOURNAL_FILE
    if not path.exists():
        print(f"no journal at {path} yet: has the hub run here?", file=sys.stderr)
        return None
    return path


def _tail_journal(path: Path, args: argparse.Namespace) -> int:
    after = max(journal_store.stats(path).last_seq - args.lines, 0)
    try:
        while True:
            while batch := journal_store.select(path, after=after):
                for stored in batch:
                    _show(stored.envelope.body, args.json)
                after = batch[-1].seq
            if args.no_follow:
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


async def _tail_broker(settings: Settings, args: argparse.Namespace) -> int:
    import aio_pika  # only broker mode needs it

    from sinks.rabbitmq import declare_topology

    assert settings.rabbitmq_url is not None
    connection = await aio_pika.connect_robust(settings.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await declare_topology(channel, settings.exchange)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, args.pattern)
        try:
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        _show(message.body, args.json)
        except (KeyboardInterrupt, asyncio.CancelledError):
            return 0
    return 0


def _moment(text: str) -> float:
    """An ISO 8601 time (UTC when no offset is given) as epoch seconds."""
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def replay_command(args: argparse.Namespace) -> int:
    settings = Settings()
    path = _journal_path(settings)
    if path is None:
        return 1
    if not args.dry_run and not settings.rabbitmq_url:
        print("replay publishes to the broker: set HUB_RABBITMQ_URL", file=sys.stderr)
        return 2
    return asyncio.run(_replay(settings, path, args))


async def _replay(settings: Settings, path: Path, args: argparse.Namespace) -> int:
    from sinks.rabbitmq import RabbitMQSink  # only replay needs a connection of its own

    sink = None
    if not args.dry_run:
        assert settings.rabbitmq_url is not None
        sink = RabbitMQSink(
            settings.rabbitmq_url,
            exchange=settings.exchange,
            publish_timeout=settings.publish_timeout,
        )
        sink.start()
        async with asyncio.timeout(30):
            await sink.wait_connected()
    after, count = 0, 0
    filters = {
        "since": args.since,
        "until": args.until,
        "provider": args.provider,
        "kind": args.kind,
    }
    try:
        while batch := journal_store.select(
            path, after=after, limit=settings.forward_batch, **filters
        ):
            if sink is not None:
                await sink.publish([s.envelope for s in batch])
            count += len(batch)
            after = batch[-1].seq
    finally:
        if sink is not None:
            await sink.close()
    print(f"{'would replay' if args.dry_run else 'replayed'} {count} events")
    return 0


def journal_stats_command(args: argparse.Namespace) -> int:
    settings = Settings()
    path = _journal_path(settings)
    if path is None:
        return 1
    stats = journal_store.stats(path)
    age = time.time() - stats.oldest_unforwarded if stats.oldest_unforwarded else None
    doc = {
        "path": str(path),
        "bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*")),
        "events": stats.events,
        "unforwarded": stats.unforwarded,
        "oldest_unforwarded_age_seconds": round(age, 3) if age is not None else None,
        "duplicates": stats.duplicates,
        "quarantined": stats.quarantined,
    }
    if args.json:
        print(orjson.dumps(doc).decode())
    else:
        for key, value in doc.items():
            print(f"{key:<32} {value}")
    return 0
