"""``hub tail`` (watch events) and ``hub replay`` (publish journaled events again); their broker
side is ``hub.cli.broker``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from core.display import describe
from core.errors import SinkUnavailable
from core.models import Event, Kind, Provider
from core.topics import matches
from hub import journaled
from hub.cli import broker
from hub.cli.common import TIME_FORMS, journal_path, moment, pattern, reader_gone, while_read
from hub.settings import Settings
from sinks import stream as stream_reading
from sinks.journal import Stored
from sinks.rabbitmq import RabbitMQSink, stream_name


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser("tail", help="show events as they arrive")
    tail.add_argument(
        "-n", "--lines", type=_count, default=10, metavar="N", help="past events to show first"
    )
    tail.add_argument("--json", action="store_true", help="one CloudEvents JSON document a line")
    tail.add_argument("--no-follow", action="store_true", help="stop after the past events")
    tail.add_argument(
        "--pattern",
        default="#",
        type=pattern,
        help="routing pattern: <provider>.<channel>.<kind>.<state>, * = one word, # = any",
    )
    tail.set_defaults(run=tail_command)

    replay = commands.add_parser(
        "replay", help="publish journaled events to the broker again (HUB_RABBITMQ_URL)"
    )
    replay.add_argument(
        "--since", type=moment, metavar="WHEN", help=f"received at or after: {TIME_FORMS}"
    )
    replay.add_argument("--until", type=moment, metavar="WHEN", help="received before WHEN")
    replay.add_argument("--provider", choices=[p.value for p in Provider])
    replay.add_argument("--kind", choices=[k.value for k in Kind])
    replay.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    replay.set_defaults(run=replay_command)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of events, 0 or more")
    return int(text)


def _show(event_json: bytes, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(event_json.decode() + "\n")
    else:
        sys.stdout.write(describe(Event.from_json(event_json)) + "\n")
    sys.stdout.flush()


def tail_command(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.rabbitmq_url:
        try:
            following = _tail_broker(settings.rabbitmq_url, settings.exchange, args)
            return asyncio.run(while_read(following))
        except KeyboardInterrupt:
            return 0
        except broker.BrokerError as exc:
            print(f"hub tail: {exc}", file=sys.stderr)
            return 1
    path = journal_path(settings)
    return _tail_journal(settings.data_dir, args) if path else 1


def _matching(events: list[Stored], pattern: str) -> list[Stored]:
    return [s for s in events if matches(pattern, s.envelope.routing_key)]


def _tail_journal(data_dir: Path, args: argparse.Namespace) -> int:
    """The events the pipeline worker processed (duplicates left out) matching the pattern:
    the last N, then (unless ``--no-follow``) as they come."""
    processed, back = journaled.caught_up(data_dir), max(args.lines, 1)
    while True:  # the last lines: looked for back from the worker's cursor, further if need be
        start = after = max(processed - back, 0)
        found: list[Stored] = []
        for earlier in journaled.pages(data_dir, after=start):
            found.extend(_matching(earlier.events, args.pattern))
            found = found[-max(args.lines, 1) :]
            after = earlier.after
        if len(found) >= args.lines or start == 0:
            break
        back *= 4  # a pattern that matches little need not read the whole journal each time
    try:
        for stored in found[-args.lines :] if args.lines > 0 else []:
            _show(stored.envelope.body, args.json)
        if args.no_follow:
            return 0
        while True:
            for later in journaled.pages(data_dir, after=after):
                for stored in _matching(later.events, args.pattern):
                    _show(stored.envelope.body, args.json)
                after = later.after
            if reader_gone():  # | head: it has what it wanted
                return 0
            time.sleep(0.5)  # the journal is a file: it is looked at twice a second
    except KeyboardInterrupt:
        return 0


async def _tail_broker(url: str, exchange: str, args: argparse.Namespace) -> int:
    def show(body: bytes) -> None:
        _show(body, args.json)

    async with broker.connected(url, "tail") as connection:
        stream = await broker.stream_of(connection, exchange)
        if stream is None:
            if args.no_follow:
                print(
                    f"hub tail: the broker keeps no stream {stream_name(exchange)} "
                    "(HUB_STREAM): no past events to show",
                    file=sys.stderr,
                )
                return 1
            await broker.follow_live(connection, exchange, args.pattern, show)
            return 0
        end = await stream_reading.last_offset(stream)
        if end is not None:
            for body in await stream_reading.history(stream, end, args.pattern, args.lines):
                show(body)
        if not args.no_follow:
            await broker.follow_stream(stream, end, args.pattern, show)
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
    sink = None
    if not args.dry_run:
        assert settings.rabbitmq_url is not None
        try:  # once, before the sink, which would try again for ever
            async with broker.connected(settings.rabbitmq_url, "replay"):
                pass
        except broker.BrokerError as exc:
            print(f"hub replay: {exc}: nothing replayed", file=sys.stderr)
            return 1
        sink = RabbitMQSink(
            settings.rabbitmq_url,
            exchange=settings.exchange,
            publish_timeout=settings.publish_timeout,
        )
        sink.start()
    after, count = 0, 0
    filters = {
        "since": args.since,
        "until": args.until,
        "provider": args.provider,
        "kind": args.kind,
    }
    try:  # what the worker processed, duplicates left out, as it published them
        if sink is not None:
            async with asyncio.timeout(broker.CONNECT_TIMEOUT):
                await sink.wait_connected()
        for found in journaled.pages(
            settings.data_dir, after=after, limit=settings.forward_batch, **filters
        ):
            if sink is not None and found.events:
                await sink.publish([s.envelope for s in found.events])
            count += len(found.events)
    except (SinkUnavailable, TimeoutError) as exc:
        why = exc.reason if isinstance(exc, SinkUnavailable) else "no connection"
        print(f"hub replay: the broker went away ({why}): {count} events replayed", file=sys.stderr)
        return 1
    finally:
        if sink is not None:
            await sink.close()
    print(f"{'would replay' if args.dry_run else 'replayed'} {count} events")
    return 0
