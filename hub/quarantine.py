"""``hub quarantine``: inspect the requests the parsers refused, and replay them once fixed.

A refused request is kept whole in the journal (method, query, body, headers, time, reason).
``replay`` runs it through today's parser: the events it gives are journaled (and forwarded by
the running hub) like any callback's, and the request is marked replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from core.errors import PayloadError, SinkUnavailable
from core.models import Provider, RawRequest
from hub import intake
from hub.settings import Settings
from parsers import REGISTRY
from sinks import journal as store
from sinks.journal import Journal, Quarantined


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


@dataclass(frozen=True)
class Outcome:
    number: int
    events: int
    duplicates: int
    refused: str | None
    """The parser's reason when it still refuses the request."""


def request_of(item: Quarantined) -> RawRequest:
    entry = item.entry
    return RawRequest(
        provider=Provider(entry.provider),
        callback=entry.callback,
        method=entry.method,
        query=entry.query,
        body=entry.body,
        content_type=entry.content_type,
        received_at=datetime.fromisoformat(entry.received_at),
    )


async def replay(settings: Settings, numbers: list[int] | None = None) -> list[Outcome]:
    """Replays the given quarantined requests (all not yet replayed when ``numbers`` is None)."""
    path = settings.data_dir / store.JOURNAL_FILE
    items = (
        [i for n in numbers for i in store.quarantined(path, seq=n)]
        if numbers
        else store.quarantined(path)
    )
    journal = Journal.open(settings.data_dir, dedup_window=settings.dedup_window)
    outcomes = []
    try:
        for item in items:
            try:
                raw = request_of(item)
            except ValueError:  # an unknown provider, an unreadable time: a row of another version
                outcomes.append(Outcome(item.seq, 0, 0, "unreadable_entry"))
                continue
            try:  # a parser's bug on this entry refuses it, and the next one is replayed
                events = intake.parse(REGISTRY[raw.provider], raw)
                appended = await intake.append(journal, raw, events)
            except PayloadError as exc:
                outcomes.append(Outcome(item.seq, 0, 0, exc.reason))
                continue
            await journal.mark_replayed(item.seq, time.time())
            outcomes.append(Outcome(item.seq, len(appended.new), len(appended.duplicates), None))
    finally:
        journal.close()  # on the loop: it commits what waits
    return outcomes


def _path(settings: Settings) -> Path | None:
    path = settings.data_dir / store.JOURNAL_FILE
    if not path.exists():
        print(f"no journal at {path}", file=sys.stderr)
        return None
    return path


def _list(args: argparse.Namespace) -> int:
    path = _path(Settings())
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
    path = _path(Settings())
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
    if _path(settings) is None:
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
            print(f"#{o.number}: {o.events} events journaled, {o.duplicates} already there")
    return 0 if all(o.refused is None for o in outcomes) else 3
