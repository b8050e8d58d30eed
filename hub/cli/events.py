"""``hub tail`` (watch events) and ``hub replay`` (publish journaled events again)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from core.display import describe
from core.models import Event, Kind, Provider
from hub import journaled
from hub.cli.common import journal_path, moment
from hub.settings import Settings
from sinks.journal import Stored


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser("tail", help="show events as they arrive")
    tail.add_argument("-n", "--lines", type=int, default=10, help="past events to show first")
    tail.add_argument("--json", action="store_true", help="one CloudEvents JSON document a line")
    tail.add_argument("--no-follow", action="store_true", help="stop after the past events")
    tail.add_argument("--pattern", default="#", help="routing pattern (broker mode)")
    tail.set_defaults(run=tail_command)

    replay = commands.add_parser(
        "replay", help="publish journaled events to the broker again (HUB_RABBITMQ_URL)"
    )
    replay.add_argument("--since", type=moment, help="received at or after (ISO 8601)")
    replay.add_argument("--until", type=moment, help="received before (ISO 8601)")
    replay.add_argument("--provider", choices=[p.value for p in Provider])
    replay.add_argument("--kind", choices=[k.value for k in Kind])
    replay.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    replay.set_defaults(run=replay_command)


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
    path = journal_path(settings)
    return _tail_journal(settings.data_dir, args) if path else 1


def _tail_journal(data_dir: Path, args: argparse.Namespace) -> int:
    """The events the pipeline worker processed (duplicates left out), as they come."""
    processed, back = journaled.caught_up(data_dir), max(args.lines, 1)
    while True:  # the last lines: looked for back from the worker's cursor, further if need be
        start = after = max(processed - back, 0)
        found: list[Stored] = []
        for earlier in journaled.pages(data_dir, after=start):
            found.extend(earlier.events)
            after = earlier.after
        if len(found) >= args.lines or start == 0:
            break
        back *= 2
    try:
        for stored in found[-args.lines :] if args.lines > 0 else []:
            _show(stored.envelope.body, args.json)
        while True:
            for later in journaled.pages(data_dir, after=after):
                for stored in later.events:
                    _show(stored.envelope.body, args.json)
                after = later.after
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


def replay_command(args: argparse.Namespace) -> int:
    settings = Settings()
    path = journal_path(settings)
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
    try:  # what the worker processed, duplicates left out, as it published them
        for found in journaled.pages(
            settings.data_dir, after=after, limit=settings.forward_batch, **filters
        ):
            if sink is not None and found.events:
                await sink.publish([s.envelope for s in found.events])
            count += len(found.events)
    finally:
        if sink is not None:
            await sink.close()
    print(f"{'would replay' if args.dry_run else 'replayed'} {count} events")
    return 0
