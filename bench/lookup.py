"""The read model at the size users reach: ``python -m bench.lookup [--events N] [--quick]``.

Writes ``N`` synthetic events (1 000 000; ``--quick``: 100 000) in a throwaway data directory:
the journal (``Journal.append``, batches of 10 000) and the worker's index, straight through
``IndexFile.process`` in the same batches, as the pipeline worker writes it. The events are a
day's traffic spread over 13 days (inside the 14-day retention): messages of the five providers
sent, then delivered (80 %), failed (15 %) or buffered and delivered (5 %); one message in 20
answered by its recipient; 1 % of the events a provider's retry (a duplicate); 100 000
recipients, and one busy number that every 200th message goes to.

Then a few hundred lookups of each kind, each as the API answers one (a read-only connection
opened, the index's lookup, the journal's documents joined by ``seq``): a message's timeline
(``hub.readmodel.message``, random messages) and a phone-number search (the first page of
``hub.readmodel.events``, the number typed in its national form, one lookup in 20 the busy
number); for information, other filters and the index's share of each lookup (the join's cost:
why the index keeps no documents). Then the console's pages on that data, the hub answering
them (``bench.pages``: the events page unfiltered and by a national phone number, a message's
page, the overview; ``--pages`` loads of each). Prints one JSON object: p50/p99/max per lookup
and per page, the index's write rate, the files' sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import pages
from core.models import Channel, Code, Event, EventData, Failure, Kind, Provider, State
from hub import lookup, readmodel
from sinks import index
from sinks import journal as store
from sinks.index import IndexFile
from sinks.journal import Journal

BATCH = 10_000
NUMBERS = 100_000
BUSY = "+33600000001"
"""The number every 200th message goes to."""
DAY = 86400.0
WINDOW = 7 * DAY
PROVIDERS = list(Provider)


def national(number: str) -> str:
    """A number as a person types it: ``06 12 34 56 78`` (``0041 79...`` for a Swiss one)."""
    if number.startswith("+33"):
        digits = "0" + number[3:]
        return " ".join(digits[i : i + 2] for i in range(0, 10, 2))
    return "00" + number[1:]


def recipient(m: int, provider: Provider) -> str:
    if m % 200 == 0:
        return BUSY
    n = (m * 7919) % NUMBERS
    return f"+4179{n:07d}" if provider is Provider.ECALL else f"+336{n:08d}"


def message_events(m: int, start: datetime, rng: random.Random) -> list[Event]:
    """Message ``m``'s events (its reports, and a reply one time in 20)."""
    provider = PROVIDERS[m % len(PROVIDERS)]
    to = recipient(m, provider)
    fate = rng.random()
    steps: list[tuple[State, bool, Failure | None]] = [(State.SENT, False, None)]
    if fate < 0.05:
        steps += [(State.BUFFERED, False, None), (State.DELIVERED, True, None)]
    elif fate < 0.20:
        failure = Failure.PERMANENT if fate < 0.12 else Failure.TEMPORARY
        steps.append((State.FAILED, True, failure))
    else:
        steps.append((State.DELIVERED, True, None))
    made: list[Event] = []
    when = start
    for state, final, failure in steps:
        when += timedelta(seconds=rng.uniform(1, 90))
        data = EventData(
            provider=provider,
            channel=Channel.SMS,
            kind=Kind.DELIVERY,
            state=state,
            final=final,
            failure=failure,
            message_id=f"m{m}",
            reference=f"r{m}",
            recipient=to,
            status=Code(code=state.value.upper(), meaning=f"the message is {state.value}"),
            error=Code(code="E42", meaning="absent subscriber") if failure else None,
            raw={"id": f"m{m}", "status": state.value, "to": to, "ref": f"r{m}"},
            received_at=when + timedelta(seconds=rng.uniform(0.1, 5)),
        )
        made.append(Event.of(data, when))
    if m % 20 == 0:
        when += timedelta(minutes=rng.uniform(1, 60))
        data = EventData(
            provider=provider,
            channel=Channel.SMS,
            kind=Kind.INBOUND,
            state=State.RECEIVED,
            final=True,
            message_id=f"in{m}",
            related_message_id=f"m{m}",
            sender=to,
            recipient="36034",
            text="OK merci",
            raw={"id": f"in{m}", "from": to, "text": "OK merci"},
            received_at=when + timedelta(seconds=1),
        )
        made.append(Event.of(data, when))
    return made


def batches(count: int, now: datetime, rng: random.Random) -> Iterator[tuple[list[Event], int]]:
    """``count`` events in arrival order, ``BATCH`` at a time, with the number of messages
    so far."""
    start = now - timedelta(days=13)
    per_event = timedelta(days=13) / count
    pending: list[Event] = []
    m = written = 0
    while written < count:
        began = start + per_event * written
        for e in message_events(m, began, rng):
            pending.append(e)
            if rng.random() < 0.01:  # the provider sends it again
                later = e.data.received_at + timedelta(seconds=rng.uniform(1, 600))
                again = EventData(**{**_fields(e.data), "received_at": later})
                pending.append(Event(**{**_fields(e), "data": again}))
        m += 1
        if len(pending) >= BATCH or len(pending) + written >= count:
            pending.sort(key=lambda e: e.data.received_at)
            chunk, pending = pending[: count - written], []
            written += len(chunk)
            yield chunk, m


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}


def fill(data_dir: Path, count: int, seed: int = 16) -> dict[str, Any]:
    """The journal and the index of ``count`` events; what it took."""
    rng = random.Random(seed)  # noqa: S311 - synthetic traffic, the same at each run
    index_seconds = 0.0
    messages = [0]
    started = time.perf_counter()

    async def write() -> None:
        nonlocal index_seconds
        journal = Journal.open(data_dir)
        idx = IndexFile.open(data_dir)
        after = 0
        try:
            for chunk, made in batches(count, datetime.now(UTC), rng):
                messages[0] = made
                await journal.append(chunk)
                rows = store.select(data_dir / store.JOURNAL_FILE, after=after, limit=len(chunk))
                began = time.perf_counter()
                idx.process(
                    [(r.seq, r.envelope.id, r.received_at, r.envelope.body) for r in rows], WINDOW
                )
                index_seconds += time.perf_counter() - began
                after = rows[-1].seq
        finally:
            idx.prune(0.0)  # nothing to forget: the statistics the worker makes hourly
            idx.close()
            journal.close()

    asyncio.run(write())
    return {
        "events": count,
        "messages": messages[0],
        "fill_seconds": round(time.perf_counter() - started, 1),
        "index_events_per_second": round(count / index_seconds) if index_seconds else None,
        "index_bytes": _size(data_dir / index.INDEX_FILE),
        "journal_bytes": _size(data_dir / store.JOURNAL_FILE),
        "duplicates": sum(index.read(data_dir).counts.duplicates.values()),
    }


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def timed(calls: list[Callable[[], Any]]) -> dict[str, float]:
    """p50, p99 and max of the calls, in milliseconds of wall time (what the targets read), and
    the p99 of their CPU time: on a shared machine a lookup's wall time also holds the time the
    process waited for the core or the disk (a wall p99 far above the CPU p99 is noise)."""
    wall, cpu = [], []
    for call in calls:
        began, used = time.perf_counter(), time.thread_time()
        call()
        wall.append(time.perf_counter() - began)
        cpu.append(time.thread_time() - used)
    return {
        "count": len(wall),
        "p50_ms": _ms(wall, 0.5),
        "p99_ms": _ms(wall, 0.99),
        "max_ms": _ms(wall, 1.0),
        "cpu_p99_ms": _ms(cpu, 0.99),
    }


_ms = pages.ms


def picks(
    count: int, messages: int, rng: random.Random
) -> tuple[list[int], list[tuple[str, str]], list[str]]:
    """``count`` random messages: their numbers, (provider, id), and their recipients as typed
    (one in 20 the busy number)."""
    picked = [rng.randrange(messages) for _ in range(count)]
    ids = [(PROVIDERS[m % len(PROVIDERS)].value, f"m{m}") for m in picked]
    numbers = [
        national(BUSY if i % 20 == 0 else recipient(m, PROVIDERS[m % len(PROVIDERS)]))
        for i, m in enumerate(picked)
    ]
    return picked, ids, numbers


def lookups(data_dir: Path, count: int, messages: int, rng: random.Random) -> dict[str, Any]:
    """Each kind of lookup ``count`` times: the API's whole path, and the index's part."""
    picked, ids, numbers = picks(count, messages, rng)
    now = datetime.now(UTC)
    week_ago = (now - timedelta(days=7)).isoformat()
    hour_later = (now - timedelta(days=7) + timedelta(hours=1)).isoformat()
    queries = {
        "phone": [lookup.query({"phone": n}) for n in numbers],
        "state_failed": [lookup.query({"state": "failed", "failure": "permanent"})] * count,
        "reference": [lookup.query({"reference": f"r{m}"}) for m in picked],
        "hour_a_week_ago": [lookup.query({"since": week_ago, "until": hour_later})] * count,
        "received_hour_a_week_ago": [
            lookup.query({"received_since": week_ago, "received_until": hour_later})
        ] * count,
        "newest": [lookup.query({})] * count,
    }  # fmt: skip
    found: dict[str, Any] = {
        "timeline": timed([lambda p=p, i=i: readmodel.message(data_dir, p, i) for p, i in ids]),
    }
    for name, qs in queries.items():
        found[name] = timed([lambda q=q: readmodel.events(data_dir, q) for q in qs])

    def index_message(p: str, i: str) -> None:
        with index.reading(data_dir) as reader:
            reader.message(p, i)

    def index_search(q: lookup.Query) -> None:
        with index.reading(data_dir) as reader:
            reader.search(q.filters, limit=q.limit + 1)

    found["index_only"] = {
        "timeline": timed([lambda p=p, i=i: index_message(p, i) for p, i in ids]),
        "phone": timed([lambda q=q: index_search(q) for q in queries["phone"]]),
    }
    page = readmodel.events(data_dir, queries["phone"][1])
    found["phone_page_items"] = len(page.items)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lookup", description=__doc__)
    parser.add_argument("--events", type=int, help="events indexed (1 000 000)")
    parser.add_argument("--quick", action="store_true", help="100 000 events, 100 lookups")
    parser.add_argument("--lookups", type=int, help="lookups of each kind (300)")
    parser.add_argument("--pages", type=int, help="loads of each console page (100)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="fill this directory and keep it (filled by an earlier run: only look up)",
    )
    args = parser.parse_args(argv)
    count = args.events or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="hub-bench-lookup-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        filled_file = data_dir / "filled.json"
        if filled_file.exists():
            filled = orjson.loads(filled_file.read_bytes())
        else:
            filled = fill(data_dir, count)
            filled_file.write_bytes(orjson.dumps(filled))
        times = args.lookups or (100 if args.quick else 300)
        found = lookups(data_dir, times, filled["messages"], random.Random(7))  # noqa: S311
        loads = args.pages or 100
        _, ids, numbers = picks(loads, filled["messages"], random.Random(11))  # noqa: S311
        shown = pages.timed_pages(data_dir, pages.paths(ids, numbers, loads))
    print(orjson.dumps({**filled, "lookups": found, "pages": shown}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
