"""The read model's lookups (``sinks.index.queries``) on a real SQLite file, where a lookup
picks its way: a range of the provider's time read on its index or scanned, a reception range
narrowed by bisection though receptions are not quite in ``seq`` order, a number's arms each on
their index. Whatever the way, the same events."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from core.models import Channel, Event, EventData, Kind, Provider, State
from sinks import index
from sinks.index import Filters, IndexFile, Party, queries

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def made(n: int, *, minutes: float, late: float = 0.0, to: str = "+33612345678") -> Event:
    """Event ``n``, of the provider's time ``minutes`` after T0, received ``late`` minutes
    after that (and a second)."""
    when = T0 + timedelta(minutes=minutes)
    data = EventData(
        provider=Provider.ISENDPRO,
        channel=Channel.SMS,
        kind=Kind.DELIVERY,
        state=State.DELIVERED,
        final=True,
        message_id=f"m{n}",
        recipient=to,
        raw={"n": n},
        received_at=when + timedelta(minutes=late, seconds=1),
    )
    return Event.of(data, when)


@pytest.fixture
def indexed(tmp_path):
    """300 events a minute apart; reception up to 30 minutes late at random, and every 7th of
    them a report arriving three days late; journaled as received, give or take three minutes
    (requests that took longer than others to be committed): ``seq`` and reception orders
    differ."""
    rng = random.Random(3)  # noqa: S311 - a fixed shuffle
    events = []
    for n in range(300):
        late = 3 * 24 * 60 if n % 7 == 0 else rng.uniform(0, 30)
        events.append(made(n, minutes=n, late=late, to=f"+3361234{n % 3:04d}"))
    events.sort(key=lambda e: e.data.received_at + timedelta(minutes=rng.uniform(-3, 3)))
    idx = IndexFile.open(tmp_path)
    rows = [(s, e.id, e.data.received_at.timestamp(), e.to_json()) for s, e in enumerate(events, 1)]
    for start in range(0, len(rows), 64):  # batches, as the worker writes them
        idx.process(rows[start : start + 64], 7 * 86400.0)
    idx.close()
    return tmp_path, {e.data.raw["n"]: e for e in events}


def search(data_dir, filters: Filters, limit: int = 1000) -> list[int]:
    with index.reading(data_dir) as reader:
        return [h.seq for h in reader.search(filters, limit=limit)]


def numbers(data_dir, seqs: list[int]) -> set[int]:
    """The events' numbers (their message ids: ``m<n>``)."""
    with closing(sqlite3.connect(data_dir / index.INDEX_FILE)) as conn:
        ids = dict(conn.execute("SELECT seq, message_id FROM indexed").fetchall())
    return {int(ids[seq][1:]) for seq in seqs}


def at(minutes: float) -> float:
    return (T0 + timedelta(minutes=minutes)).timestamp()


@pytest.mark.parametrize(("since", "until"), [(100, 160), (None, 40), (250, None), (-5, 400)])
def test_a_range_of_provider_time_gives_the_same_events_on_its_index_or_scanned(
    indexed, monkeypatch, since, until
) -> None:
    data_dir, events = indexed
    filters = Filters(
        since=None if since is None else at(since), until=None if until is None else at(until)
    )
    expected = {
        n
        for n, e in events.items()
        if (since is None or e.time.timestamp() >= at(since))
        and (until is None or e.time.timestamp() < at(until))
    }
    monkeypatch.setattr(queries, "NARROW_RANGE", 10**9)  # every range narrow: its index
    on_index = search(data_dir, filters)
    monkeypatch.setattr(queries, "NARROW_RANGE", 1)  # none: scanned
    scanned = search(data_dir, filters)
    assert on_index == scanned == sorted(on_index, reverse=True)
    assert numbers(data_dir, scanned) == expected


def test_a_reception_range_misses_none_received_out_of_order(indexed) -> None:
    data_dir, events = indexed
    ranges = [(start, start + 7) for start in range(0, 330, 3)]  # (without the slack, a third
    ranges += [(200, None), (None, 100)]  # of them would miss some: see RECEPTION_SLACK)
    for since, until in ranges:
        filters = Filters(
            received_since=None if since is None else at(since),
            received_until=None if until is None else at(until),
        )
        expected = {
            n
            for n, e in events.items()
            if (since is None or e.data.received_at.timestamp() >= at(since))
            and (until is None or e.data.received_at.timestamp() < at(until))
        }
        found = search(data_dir, filters)
        assert numbers(data_dir, found) == expected, (since, until)
        assert found == sorted(found, reverse=True)


def test_a_number_s_pages_cut_each_arm_and_lose_nothing(indexed) -> None:
    data_dir, events = indexed
    party = Filters(parties=(Party("+33612340001"), Party("+33612340002", ("isendpro",))))
    everything = search(data_dir, party)
    assert numbers(data_dir, everything) == {n for n in events if n % 3 in (1, 2)}
    paged: list[int] = []
    with index.reading(data_dir) as reader:
        before = None
        while hits := reader.search(party, before=before, limit=7):
            paged += [h.seq for h in hits]
            before = hits[-1].seq
    assert paged == everything
    # a provider the form is not for: not found in its events
    elsewhere = Filters(parties=(Party("+33612340001", ("ecall",)),))
    assert search(data_dir, elsewhere) == []


@pytest.mark.parametrize("analyzed", [False, True])
def test_the_lookups_use_their_indexes(indexed, analyzed) -> None:
    """What each lookup asks SQLite for, as planned: on an index (or the primary key), never a
    scan of the table for a message, a number or a reception range; before the statistics the
    worker makes when it prunes, and after."""
    data_dir, _ = indexed
    if analyzed:
        idx = IndexFile.open(data_dir)
        idx.prune(0.0)
        idx.close()
        with closing(sqlite3.connect(data_dir / index.INDEX_FILE)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM sqlite_stat1").fetchone()[0] > 0
    plans: list[str] = []

    class Planned:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, params=()):
            plan = self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            plans.append(" | ".join(row[3] for row in plan))
            return self.conn.execute(sql, params)

    with closing(sqlite3.connect(data_dir / index.INDEX_FILE)) as conn:
        reader = queries.Reader(Planned(conn))  # type: ignore[arg-type]
        reader.message("isendpro", "m5")
        assert "indexed_message_id" in plans[0] and "indexed_related" in plans[1]
        plans.clear()
        reader.search(Filters(parties=(Party("+33612340001"),)))
        assert "indexed_sender" in plans[0] and "indexed_recipient" in plans[0]
        plans.clear()
        reader.search(Filters(received_since=at(10), received_until=at(20)))
        assert "SCAN indexed" not in plans[-1] and "rowid>? AND rowid<?" in plans[-1]
        for lookup in (Filters(message_id="m5"), Filters(reference="r"), Filters(state="failed")):
            plans.clear()
            reader.search(lookup)
            assert "USING INDEX" in plans[-1], plans
        plans.clear()
        reader.per_minute(at(100), at(160))
        assert "SEARCH minutes USING PRIMARY KEY (minute>? AND minute<?)" in plans[-1], plans


def test_counts_per_minute_miss_none_received_out_of_order(indexed) -> None:
    """The overview's counts: every event received in the range, in its minute, whatever the
    order it was journaled in (``seq`` and reception orders differ) and the batches it came
    in (a minute's count added to by each)."""
    data_dir, events = indexed
    for since, until in [(0, 60), (95, 155), (200, 400), (-10, 5000)]:
        expected: dict[int, int] = {}
        for e in events.values():
            received = e.data.received_at.timestamp()
            if at(since) <= received < at(until):
                minute = int(received // 60) * 60
                expected[minute] = expected.get(minute, 0) + 1
        with index.reading(data_dir) as reader:
            found = reader.per_minute(at(since), at(until))
        assert {m: n for m, p, s, n in found} == expected, (since, until)
        assert {(p, s) for _, p, s, _ in found} <= {("isendpro", "delivered")}
        assert [m for m, *_ in found] == sorted(m for m, *_ in found)


def test_counts_per_minute_leave_duplicates_out_and_go_with_retention(tmp_path) -> None:
    first, late = made(1, minutes=0), made(2, minutes=90)
    idx = IndexFile.open(tmp_path)
    rows = [(s, e.id, e.data.received_at.timestamp(), e.to_json()) for s, e in [(1, first)]]
    idx.process(rows, 7 * 86400.0)
    again = [(2, first.id, first.data.received_at.timestamp() + 5, first.to_json())]
    assert idx.process(again, 7 * 86400.0) == [True]  # a provider's retry
    idx.process([(3, late.id, late.data.received_at.timestamp(), late.to_json())], 7 * 86400.0)
    with index.reading(tmp_path) as reader:
        assert [n for *_, n in reader.per_minute(at(-60), at(600))] == [1, 1]
    idx.prune(at(60))  # received before then: forgotten, with their minutes
    idx.close()
    with index.reading(tmp_path) as reader:
        assert reader.per_minute(at(-60), at(600)) == [
            (int(late.data.received_at.timestamp() // 60) * 60, "isendpro", "delivered", 1)
        ]


def test_the_second_format_gains_its_counts_per_minute_from_its_rows(indexed) -> None:
    """An index of the second format (before ``minutes``): counted by minute at its upgrade,
    the same counts as those written batch by batch."""
    data_dir, _ = indexed
    with index.reading(data_dir) as reader:
        written = reader.per_minute(at(-10), at(10_000))
    with closing(sqlite3.connect(data_dir / index.INDEX_FILE)) as conn:
        conn.execute("DROP TABLE minutes")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    with pytest.raises(index.NotReady), index.reading(data_dir):  # until the worker opens it
        pass
    IndexFile.open(data_dir).close()
    with index.reading(data_dir) as reader:
        assert reader.per_minute(at(-10), at(10_000)) == written
    assert sum(n for *_, n in written) == 300
