"""The pipeline worker's index (``sinks.index``), on a real SQLite file: duplicates within the
window, counts, what the console looks events up by, and what survives a restart."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta

import msgspec

from core.models import Channel, Event, EventData, Kind, Provider, State
from sinks import index
from sinks.index import IndexCollector, IndexFile
from tests.support import event

DAY = 86400.0


def journaled(events: list[Event], *, start: int = 1) -> list[index.Journaled]:
    return [
        (seq, e.id, e.data.received_at.timestamp(), e.to_json())
        for seq, e in enumerate(events, start=start)
    ]


def at(e: Event, days: float) -> Event:
    """The same callback (same id), received ``days`` later."""
    received = e.data.received_at + timedelta(days=days)
    return msgspec.structs.replace(e, data=msgspec.structs.replace(e.data, received_at=received))


def test_a_copy_within_the_window_is_a_duplicate_one_after_it_is_not(tmp_path) -> None:
    first = event(1)
    copies = [first, at(first, 1), at(first, 6.9), at(first, 7.5), event(2), at(first, 8)]
    idx = IndexFile.open(tmp_path)
    flags = idx.process(journaled(copies), 7 * DAY)
    # the window counts from the last copy that was not a duplicate: day 0, then day 7.5
    assert flags == [False, True, True, False, False, True]
    assert idx.duplicates(0, 6) == {2, 3, 6}
    assert idx.cursor == 6
    assert idx.counts.duplicates == {"isendpro": 3}
    assert sum(idx.counts.events.values()) == 3


def test_copies_in_one_batch_and_across_batches_are_told_apart_alike(tmp_path) -> None:
    events = journaled([event(1), event(1), event(2), event(1), event(2)])
    one = IndexFile.open(tmp_path / "one")
    together = one.process(events, 7 * DAY)
    apart = IndexFile.open(tmp_path / "apart")
    split = [
        f for part in (events[:2], events[2:4], events[4:]) for f in apart.process(part, 7 * DAY)
    ]
    assert together == split == [False, True, False, True, True]


def test_cursor_counts_and_marks_survive_a_restart_and_a_lost_index_is_rebuilt_the_same(
    tmp_path,
) -> None:
    events = journaled([event(1), event(2), event(1), event(3), event(2)])
    idx = IndexFile.open(tmp_path)
    flags = idx.process(events[:3], 7 * DAY)
    idx.close()
    again = IndexFile.open(tmp_path)
    assert again.cursor == 3
    assert again.process(events, 7 * DAY) == [False, True]  # only those after the cursor
    state = index.read(tmp_path)
    assert (state.cursor, state.counts.duplicates) == (5, {"isendpro": 2})
    again.close()
    (tmp_path / index.INDEX_FILE).unlink()  # a lost index: decided again from the journal
    rebuilt = IndexFile.open(tmp_path)
    assert rebuilt.process(events, 7 * DAY) == [*flags, False, True]


def test_what_the_console_looks_events_up_by(tmp_path) -> None:
    reply = Event.of(
        EventData(
            provider=Provider.SMSMODE,
            channel=Channel.SMS,
            kind=Kind.INBOUND,
            state=State.RECEIVED,
            final=True,
            message_id="m-9",
            reference="ref-9",
            related_message_id="m-1",
            sender="+33612345678",
            recipient="36034",
            text="STOP",
            raw={"numero": "0612345678"},
            received_at=datetime.now(UTC),
        )
    )
    idx = IndexFile.open(tmp_path)
    idx.process(journaled([event(7), reply]), 7 * DAY)
    with closing(sqlite3.connect(tmp_path / index.INDEX_FILE)) as conn:
        rows = conn.execute(
            "SELECT seq, provider, channel, message_id, related_message_id, reference, sender,"
            " recipient, kind, state, failure, final, duplicate FROM indexed ORDER BY seq"
        ).fetchall()
    assert rows[1] == (
        *(2, "smsmode", "sms", "m-9", "m-1", "ref-9", "+33612345678", "36034"),
        *("inbound", "received", None, 1, 0),
    )
    assert rows[0][1:4] == ("isendpro", "sms", "7")
    assert rows[0][8:12] == ("delivery", "delivered", None, 1)


def test_prune_forgets_old_events_only(tmp_path) -> None:
    old, recent = at(event(1), -20), event(2)
    idx = IndexFile.open(tmp_path)
    idx.process(journaled([old, recent]), 7 * DAY)
    assert idx.prune(recent.data.received_at.timestamp() - 14 * DAY) == 1
    assert idx.process(journaled([old], start=3), 7 * DAY) == [False]  # old one forgotten


def test_the_collector_exports_counts_by_event_and_duplicates_by_provider(tmp_path) -> None:
    idx = IndexFile.open(tmp_path)
    idx.process(journaled([event(1), event(1), event(2, statut="1")]), 7 * DAY)
    families = {f.name: f for f in IndexCollector(tmp_path, ["isendpro", "dmc"]).collect()}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("hub_duplicate_events_total", (("provider", "isendpro"),))] == 1
    assert samples[("hub_duplicate_events_total", (("provider", "dmc"),))] == 0
    delivered = [v for (n, labels), v in samples.items() if ("state", "delivered") in labels]
    failed = [v for (n, labels), v in samples.items() if ("state", "failed") in labels]
    assert delivered == [1] and failed == [1]


def test_no_index_file_reads_as_nothing_indexed(tmp_path) -> None:
    assert index.read(tmp_path).cursor == 0
    assert index.duplicates(tmp_path, 0, 10) == set()
    assert index.retained_duplicates(tmp_path) == 0
