"""``hub quarantine list|show|replay|drop|purge``: the requests the parsers refused
(``hub.quarantine``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from core.errors import SinkUnavailable
from hub.cli.common import journal_path
from hub.quarantine import drop as quarantine_drop
from hub.quarantine import purge as quarantine_purge
from hub.quarantine import replay
from hub.settings import Settings
from sinks import journal as store


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("quarantine", help="requests the parsers refused")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="one line per quarantined request")
    listing.add_argument("--all", action="store_true", help="replayed ones too")
    listing.set_defaults(run=_list)
    show = sub.add_parser("show", help="one request, whole")
    show.add_argument("number", type=int)
    show.set_defaults(run=_show)
    replay = sub.add_parser("replay", help="run requests through the parsers again")
    replay.add_argument("numbers", type=int, nargs="*", help="request numbers (default: all)")
    replay.set_defaults(run=_replay)
    drop = sub.add_parser("drop", help="delete requests, replayed or not")
    drop.add_argument("numbers", type=int, nargs="+", help="request numbers")
    drop.set_defaults(run=_drop)
    purge = sub.add_parser("purge", help="delete every replayed request (waiting ones stay)")
    purge.set_defaults(run=_purge)


def _list(args: argparse.Namespace) -> int:
    path = journal_path(Settings())
    if path is None:
        return 1
    for item in store.quarantined(path, include_replayed=args.all):
        e = item.entry
        replayed = "  replayed" if item.replayed_at else ""
        print(
            f"{item.seq:>6}  {e.received_at[:19]}  {e.provider:<9} {e.callback:<12} "
            f"{e.method:<4} {e.reason:<20} {len(e.query) + len(e.body):>7} bytes{replayed}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    path = journal_path(Settings())
    if path is None:
        return 1
    found = store.quarantined(path, seq=args.number)
    if not found:
        print(f"no quarantined request #{args.number}", file=sys.stderr)
        return 1
    e = found[0].entry
    print(f"#{found[0].seq} {e.method} {e.provider}/{e.callback}  reason: {e.reason}")
    print(f"received at: {e.received_at}   replayed: {found[0].replayed_at is not None}")
    for name, value in orjson.loads(e.headers).items():
        print(f"{name}: {value}")
    print(f"\nquery: {_printable(e.query)}\nbody:\n{_printable(e.body)}")
    return 0


def _printable(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _replay(args: argparse.Namespace) -> int:
    settings = Settings()
    if journal_path(settings) is None:
        return 1
    try:
        outcomes = asyncio.run(replay(settings, args.numbers or None))
    except SinkUnavailable as exc:  # the journal's fault, not an entry's: nothing more to try
        print(f"the journal cannot take events ({exc.reason}): replay stopped", file=sys.stderr)
        return 1
    for o in outcomes:
        if o.refused:
            print(f"#{o.number}: still refused ({o.refused})")
        else:
            print(f"#{o.number}: {o.events} events journaled")
    unknown = sorted(set(args.numbers) - {o.number for o in outcomes})
    for number in unknown:
        print(f"no quarantined request #{number}", file=sys.stderr)
    if unknown:
        return 1
    return 0 if all(o.refused is None for o in outcomes) else 3


def _drop(args: argparse.Namespace) -> int:
    settings = Settings()
    if journal_path(settings) is None:
        return 1
    try:
        dropped = asyncio.run(quarantine_drop(settings, args.numbers))
    except SinkUnavailable as exc:
        print(f"the journal cannot take writes ({exc.reason}): nothing dropped", file=sys.stderr)
        return 1
    for number in dict.fromkeys(args.numbers):
        if number in dropped:
            print(f"#{number}: dropped")
        else:
            print(f"no quarantined request #{number}", file=sys.stderr)
    return 0 if set(args.numbers) <= set(dropped) else 1


def _purge(args: argparse.Namespace) -> int:
    settings = Settings()
    if journal_path(settings) is None:
        return 1
    try:
        count = asyncio.run(quarantine_purge(settings))
    except SinkUnavailable as exc:
        print(f"the journal cannot take writes ({exc.reason}): nothing purged", file=sys.stderr)
        return 1
    print(f"{count} replayed requests dropped")
    return 0
