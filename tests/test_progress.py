"""The forwarder's progress file, its metrics, the backlog joined from it and the journal, and
the settings a forwarder process is given."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core.models import Event
from hub import backlog
from hub.forward_process import environment
from hub.settings import Settings
from sinks import journal as store
from sinks.index import IndexFile
from sinks.progress import (
    CONFIRM_BUCKETS,
    PROGRESS_FILE,
    ProgressCollector,
    ProgressFile,
    cursor,
    read,
)
from tests.support import (
    dlr_query,
    event,
    make_settings,
    metric,
    unforwarded,
    write_journal,
)


def test_progress_is_saved_and_read_back(tmp_path: Path) -> None:
    assert cursor(tmp_path) == 0  # no forwarder ran here
    progress_file = ProgressFile.open(tmp_path)
    try:
        progress = progress_file.load()
        assert progress.cursor == 0
        progress.confirmed(7, {"isendpro": 5, "dmc": 2}, 0.003)
        progress.confirmed(9, {"isendpro": 2}, None)  # a partly confirmed batch: no timing
        progress.broker_connected = True
        progress_file.save(progress)
    finally:
        progress_file.close()
    again = read(tmp_path)
    assert again is not None
    assert again.cursor == 9 == cursor(tmp_path)
    assert again.forwarded == {"isendpro": 7, "dmc": 2}
    assert sum(again.confirm_counts) == 1
    assert again.confirm_counts[CONFIRM_BUCKETS.index(0.005)] == 1
    assert again.broker_connected


def test_a_progress_file_being_created_reads_as_none_and_scrapes(tmp_path: Path) -> None:
    """The moment between the forwarder creating its file and creating its table (seen as a
    500 on /metrics in CI): no cursor yet, and the metrics still answer."""
    sqlite3.connect(tmp_path / PROGRESS_FILE).close()  # the file, empty, as connect leaves it
    assert read(tmp_path) is None and cursor(tmp_path) == 0
    registry = CollectorRegistry()
    registry.register(ProgressCollector(tmp_path, ["isendpro"], forwarding=True))
    assert b"hub_forwarded_events_total" in generate_latest(registry)


def test_the_cursor_never_goes_back(tmp_path: Path) -> None:
    progress_file = ProgressFile.open(tmp_path)
    try:
        progress = progress_file.load()
        progress.confirmed(10, {"dmc": 1}, None)
        progress.confirmed(4, {"dmc": 1}, None)
        assert progress.cursor == 10
    finally:
        progress_file.close()


@pytest.mark.parametrize(
    ("marked", "cursor"),
    [((), 0), ((1, 2), 2), ((1, 2, 3, 4), 4), ((1, 3), 1)],
    ids=["none", "prefix", "all", "gap"],
)
def test_a_journal_of_an_earlier_hub_starts_after_its_forwarded_prefix(
    tmp_path: Path, marked: tuple[int, ...], cursor: int
) -> None:
    """Earlier hubs marked each forwarded event (``forwarded_at``); the cursor starts before the
    first unmarked one, so nothing unforwarded is skipped."""
    journal = tmp_path / store.JOURNAL_FILE
    with closing(sqlite3.connect(journal)) as conn:
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, forwarded_at REAL)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?)",
            [(s, 1.0 if s in marked else None) for s in (1, 2, 3, 4)],
        )
        conn.commit()
    assert store.marked_prefix(journal) == cursor
    progress_file = ProgressFile.open(tmp_path, start=lambda: store.marked_prefix(journal))
    try:
        assert progress_file.load().cursor == cursor
    finally:
        progress_file.close()


def test_a_progress_file_starts_where_told_only_when_new(tmp_path: Path) -> None:
    asked: list[int] = []

    def start() -> int:
        asked.append(5)
        return 5

    ProgressFile.open(tmp_path, start=start).close()
    again = ProgressFile.open(tmp_path, start=start)
    try:
        assert again.load().cursor == 5
    finally:
        again.close()
    assert asked == [5]


async def test_metrics_show_the_backlog_after_the_cursor(tmp_path: Path) -> None:
    from core.models import Provider, RawRequest, utc_now
    from parsers import REGISTRY

    journal = store.Journal.open(tmp_path)
    try:
        module = REGISTRY[Provider.ISENDPRO]
        for i in range(5):
            raw = RawRequest(
                provider=Provider.ISENDPRO,
                callback="delivery",
                method="GET",
                query=dlr_query(i).encode(),
                received_at=utc_now(),
            )
            await journal.append(module.parse(raw))
    finally:
        journal.close()
    assert backlog.of(tmp_path, journal.path, forwarding=True).events == 5  # no forwarder yet
    progress_file = ProgressFile.open(tmp_path)
    progress = progress_file.load()
    progress.confirmed(2, {"isendpro": 2}, 0.01)
    progress_file.save(progress)
    progress_file.close()

    registry = CollectorRegistry()
    registry.register(ProgressCollector(tmp_path, ["isendpro", "dmc"], forwarding=True))
    registry.register(backlog.BacklogCollector(tmp_path, journal.path, forwarding=True))
    text = generate_latest(registry).decode()
    assert metric(text, "hub_journal_backlog_events") == 3
    assert metric(text, "hub_forwarded_events_total", provider="isendpro") == 2
    assert metric(text, "hub_forwarded_events_total", provider="dmc") == 0
    assert metric(text, "hub_forward_confirm_duration_seconds_count") == 1
    assert metric(text, "hub_forward_confirm_duration_seconds_bucket", le="0.01") == 1
    assert metric(text, "hub_forward_confirm_duration_seconds_bucket", le="0.005") == 0
    assert metric(text, "hub_broker_connected") == 0
    assert (metric(text, "hub_journal_oldest_unforwarded_age_seconds") or 0) > 0
    assert unforwarded(tmp_path) == 3
    waiting = backlog.of(tmp_path, journal.path, forwarding=True)
    assert waiting.oldest == store.select(journal.path, after=2, limit=1)[0].received_at

    alone = CollectorRegistry()
    alone.register(ProgressCollector(tmp_path, ["isendpro"], forwarding=False))
    alone.register(backlog.BacklogCollector(tmp_path, journal.path, forwarding=False))
    text = generate_latest(alone).decode()
    assert metric(text, "hub_journal_backlog_events") == 0  # no broker: nothing waits for one
    assert metric(text, "hub_journal_oldest_unforwarded_age_seconds") == 0
    assert metric(text, "hub_broker_connected") is None
    assert backlog.of(tmp_path, journal.path, forwarding=False) == backlog.Backlog(False, 0, None)


@pytest.mark.parametrize("forwarding", [True, False], ids=["broker", "no-broker"])
def test_metrics_show_what_the_worker_has_not_processed(tmp_path: Path, forwarding: bool) -> None:
    """The worker's own backlog: the journal after its index's cursor, with a broker or without
    (the forwarder's cursor plays no part)."""
    events = [event(i) for i in range(5)]
    write_journal(tmp_path, events[:2])  # journaled and processed
    asyncio.run(append(tmp_path, events[2:]))  # journaled since, not processed
    journal = tmp_path / store.JOURNAL_FILE
    registry = CollectorRegistry()
    registry.register(backlog.BacklogCollector(tmp_path, journal, forwarding=forwarding))
    before = time.time()
    text = generate_latest(registry).decode()
    assert metric(text, "hub_worker_backlog_events") == 3
    age = metric(text, "hub_worker_oldest_unprocessed_age_seconds") or 0.0
    oldest = events[2].data.received_at.timestamp()
    assert before - oldest <= age <= time.time() - oldest
    assert backlog.unprocessed(tmp_path, journal).oldest == oldest

    worker = IndexFile.open(tmp_path)  # the worker catches up
    try:
        rows = store.select(journal, after=worker.cursor)
        worker.process([(r.seq, r.envelope.id, r.received_at, r.envelope.body) for r in rows], 1.0)
    finally:
        worker.close()
    text = generate_latest(registry).decode()
    assert metric(text, "hub_worker_backlog_events") == 0
    assert metric(text, "hub_worker_oldest_unprocessed_age_seconds") == 0


async def append(data_dir: Path, events: list[Event]) -> None:
    journal = store.Journal.open(data_dir)
    try:
        await journal.append(events)
    finally:
        journal.close()


def test_the_backlog_counts_what_follows_the_cursor_after_retention(tmp_path: Path) -> None:
    """Retention deleted the oldest events: what follows the cursor is still counted exactly
    (the journal's ``after`` looks at the first and the last ``seq``, it does not count)."""
    journal = tmp_path / store.JOURNAL_FILE
    assert store.after(journal, 0) == store.After(0, None)  # no journal yet
    with closing(sqlite3.connect(journal)) as conn:
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, received_at REAL)")
        conn.executemany("INSERT INTO events VALUES (?, ?)", [(s, 100.0 + s) for s in range(4, 11)])
        conn.commit()
    assert store.after(journal, 0) == store.After(7, 104.0)
    assert store.after(journal, 6) == store.After(4, 107.0)
    assert store.after(journal, 10) == store.After(0, None)


def test_a_forwarder_process_gets_the_hubs_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path,
        rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/",
        stream=False,
        forward_batch=64,
        dedup_window=3600.0,
        retention=7200.0,
    )
    monkeypatch.setenv("HUB_JOURNAL_MAX_BYTES", "1000")  # the hub's own environment says
    monkeypatch.setenv("HUB_EXCHANGE", "not-this-one")  # otherwise: the settings object wins
    child = environment(settings)
    assert "HUB_JOURNAL_MAX_BYTES" not in child
    monkeypatch.delenv("HUB_JOURNAL_MAX_BYTES")
    for name, value in child.items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings
