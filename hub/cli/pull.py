"""``hub pull status`` and ``hub pull once PROVIDER``: the pull sources (``hub.pull``).

``status`` reads each source's state in the data directory (what the running hub's polls, and
``pull once``'s, left there). ``once`` polls a source now, from this process, through a journal
of its own beside the running hub's (as ``hub quarantine replay`` does): the source's lock
keeps it and the hub's own poll of that source apart, and the running hub's pipeline worker
forwards what it journals. It prints the new events, one line each (``--json``: their
CloudEvents documents), then one line saying what the provider answered. A source that reads
several lists in turn (eCampaign) is polled once per list (``Source.round``), stopping at the
first that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

from core.display import describe
from core.models import Provider
from hub.pull import sources
from hub.pull.poller import Polled, Poller
from hub.pull.source import Source
from hub.settings import Settings
from parsers.pull.base import Outcome
from sinks.journal import Journal
from sinks.metrics import Metrics

USER_AGENT = "callback-hub (hub pull once)"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("pull", help="the pull sources: what providers never push")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    status = sub.add_parser("status", help="each source: configured, last poll, cursor, items")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(run=_status)
    once = sub.add_parser("once", help="poll a source now and print what arrived")
    once.add_argument("provider", choices=[p.value for p in sources.KNOWN])
    once.add_argument("--json", action="store_true", help="one CloudEvents JSON document a line")
    once.set_defaults(run=_once)


def _status(args: argparse.Namespace) -> int:
    found = sources.statuses(Settings())
    if args.json:
        print(orjson.dumps([s.as_json() for s in found], option=orjson.OPT_INDENT_2).decode())
        return 0
    for status in found:
        doc = status.as_json()
        on = "on" if status.configured else f"off (set {status.variable})"
        print(f"{status.provider.value}: {on}")
        if not status.polled:
            print("  never polled")
            continue
        outcome = f"{doc['outcome']}" + (f" ({doc['reason']})" if doc["reason"] else "")
        print(f"  last poll:     {doc['last_poll']}  {outcome}")
        print(f"  last success:  {doc['last_success'] or 'never'}")
        print(f"  items:         {doc['items']} journaled, newest {doc['newest_item'] or '-'}")
        print(f"  cursor:        {doc['cursor']}")
        if status.configured:
            failing = f" ({doc['failures']} failures in a row)" if doc["failures"] else ""
            print(f"  next poll:     {doc['next_poll']}{failing}")
    return 0


def _once(args: argparse.Namespace) -> int:
    settings = Settings()
    provider = Provider(args.provider)
    source = next((s for s in sources.configured(settings) if s.provider == provider), None)
    if source is None:
        print(
            f"the {provider.value} source is off: set {sources.VARIABLES[provider]}",
            file=sys.stderr,
        )
        return 2
    polled = asyncio.run(_poll(settings, source))
    for event in polled.events:
        print(event.to_json().decode() if args.json else describe(event))
    said = polled.outcome + (f" ({polled.reason})" if polled.reason else "")
    note = f", quarantined as #{polled.quarantined}" if polled.quarantined else ""
    print(
        f"{provider.value}: {said}{note}: {len(polled.events)} new events journaled",
        file=sys.stdout if polled.succeeded else sys.stderr,
    )
    return 0 if polled.succeeded else 1


async def _poll(settings: Settings, source: Source) -> Polled:
    journal = Journal.open(settings.data_dir)
    try:
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            poller = Poller(
                source,
                journal=journal,
                metrics=Metrics(CollectorRegistry()),  # this process's: nobody scrapes it
                session=session,
                data_dir=settings.data_dir,
            )
            polled = await poller.poll()
            events, read = list(polled.events), polled.outcome == Outcome.ITEMS
            for _ in range(source.round - 1):
                if not polled.succeeded:
                    break  # what failed is said as such
                polled = await poller.poll()
                events += polled.events
                read = read or polled.outcome == Outcome.ITEMS
            if read and polled.succeeded:
                polled.outcome = Outcome.ITEMS.value  # a list of the round held items
            polled.events = events
            return polled
    finally:
        journal.close()  # on the loop: it commits what waits
