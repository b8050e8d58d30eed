"""``hub subscribe``: print the events matching a pattern, from the broker (``hub.subscribe``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aio_pika.exceptions import AMQPError

from core.display import describe
from hub.cli.broker import said
from hub.cli.common import TIME_FORMS, pattern, quiet_broker_clients, when, while_read
from hub.settings import Settings
from hub.subscribe import Offset, SubscribeError, Subscription, parse_from


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers ``hub subscribe`` on the CLI."""
    cmd = commands.add_parser(
        "subscribe",
        help="events matching a routing pattern, from the broker (HUB_RABBITMQ_URL)",
        description="Prints the events matching PATTERN as they are published. Ctrl-C stops.",
    )
    cmd.add_argument(
        "pattern",
        nargs="?",
        default="#",
        type=pattern,
        help="<provider>.<channel>.<kind>.<state>, * = one word, # = any (default: #)",
    )
    cmd.add_argument("--json", action="store_true", help="one CloudEvents JSON document a line")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument(
        "--queue",
        metavar="NAME",
        help="a durable subscription: the queue NAME keeps events while you are away",
    )
    where.add_argument(
        "--from",
        dest="from_",
        metavar="WHEN",
        type=_from,
        help=f"read the stream from WHEN, then live: first, an offset, or {TIME_FORMS}",
    )
    cmd.add_argument("--count", type=_count, metavar="N", help="stop after N events (1 or more)")
    cmd.set_defaults(run=subscribe_command)


def _count(text: str) -> int:
    """A number of events to stop after: 0 would never be reached (the count is checked after
    each event shown), so it is refused, as anything but a whole number."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of events, 1 or more")
    return int(text)


def _from(text: str) -> Offset:
    """A point of the stream (``hub.subscribe.parse_from``), or a time as ``hub replay --since``
    reads it (``hub.cli.common.when``)."""
    if text in ("first", "last", "next", "beginning") or text.isdigit():
        return parse_from(text)
    try:
        return when(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected first, last, next, an offset, or {TIME_FORMS}"
        ) from None


def subscribe_command(args: argparse.Namespace) -> int:
    settings = Settings()
    if not settings.rabbitmq_url:
        print("hub subscribe reads from the broker: set HUB_RABBITMQ_URL", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the subscription says when it loses the broker and when it reads again, in one line each;
    # the client libraries would add a traceback and a line a second while the broker is away
    logging.getLogger("hub.subscribe").setLevel(logging.INFO)
    quiet_broker_clients()
    subscription = Subscription(
        settings.rabbitmq_url,
        args.pattern,
        exchange=settings.exchange,
        queue=args.queue,
        from_=args.from_,
    )
    try:
        return asyncio.run(while_read(_print(subscription, args)))
    except KeyboardInterrupt:
        return 0


async def _print(subscription: Subscription, args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    shown = 0
    try:
        async with subscription:
            print(
                f"subscribed to {subscription.pattern} on {subscription.exchange} "
                f"({subscription.queue_name}); Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
            async for delivery in subscription:
                line = delivery.message.body.decode() if args.json else describe(delivery.event)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                await delivery.ack()
                shown += 1
                if args.count is not None and shown >= args.count:
                    return 0
    except SubscribeError as exc:
        print(f"hub subscribe: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (| head): no more output, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (AMQPError, OSError) as exc:
        print(f"hub subscribe: cannot reach the broker ({said(exc)})", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        return 0
    return 0
