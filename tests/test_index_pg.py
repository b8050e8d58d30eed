"""The shared index on a real PostgreSQL (``tests.harness.postgres``): its migrations, the
pipeline worker writing it beside its local index, the deduplication across two replicas (two
data directories), the lookups of events another replica took, a database away and back.

In CI (``CI=true``, or ``HUB_REQUIRE_BROKER=1`` as ``make test`` sets) these fail when
PostgreSQL cannot start; elsewhere they skip, saying why (``postgres`` in ``tests.conftest``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from core.errors import IndexUnavailable
from core.models import Channel, Event, EventData, Kind, Provider, State
from hub.forward_process import worker
from hub.shared_index import REPLICA_FILE, ReplicatedIndex
from sinks import index, progress
from sinks import journal as store
from sinks.index_pg import SharedIndex, by_message, by_phone, head, upgrade
from sinks.index_pg.writer import Record
from tests.support import append_events, eventually, make_settings, run_hub, sql, wait_until

WINDOW = 7 * 86_400.0
PHONE = "+33612345678"


def delivery(message_id: int, *, recipient: str | None = PHONE) -> Event:
    """An iSendPro delivery report to ``recipient``: the same ``message_id``, the same event id
    (a provider's retry), whichever replica receives it."""
    data = EventData(
        provider=Provider.ISENDPRO,
        channel=Channel.SMS,
        kind=Kind.DELIVERY,
        state=State.DELIVERED,
        final=True,
        message_id=str(message_id),
        recipient=recipient,
        raw={"id": str(message_id), "statut": "0"},
        received_at=datetime.now(UTC),
    )
    return Event.of(data)


def test_migrations_apply_on_an_empty_database_and_a_second_start_changes_nothing(
    postgres, database
) -> None:
    assert upgrade(database) is None  # empty: every migration applied
    tables = {
        r[0]
        for r in sql(
            postgres, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert tables == {"alembic_version", "events", "claims", "replicas"}
    schema = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    before = sql(postgres, database, schema)
    assert {"events_message", "events_recipient", "events_sender", "events_reference"} <= {
        r[0] for r in before
    }
    assert upgrade(database) == head()  # a second start: found at the head, nothing to do
    assert sql(postgres, database, schema) == before
    assert sql(postgres, database, "SELECT version_num FROM alembic_version") == [[head()]]


def test_a_newer_hubs_schema_is_not_written_into(postgres, database) -> None:
    """A rolling upgrade: a newer replica migrated the shared index to a revision this hub does
    not know; this one's batches wait (as for a database away), nothing written."""
    upgrade(database)
    sql(postgres, database, "UPDATE alembic_version SET version_num = 'f00d'")
    shared = SharedIndex(database, "old")
    shared.open()
    try:
        with pytest.raises(IndexUnavailable, match="newer hub"):
            shared.record([_record(1, "e1", 1000.0)], WINDOW)
    finally:
        shared.close()
    assert sql(postgres, database, "SELECT count(*) FROM events") == [["0"]]


def test_replicas_starting_together_migrate_once(postgres, database) -> None:
    found: list[str | None] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            found.append(upgrade(database))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(found, key=str) == sorted([None, head(), head()], key=str)  # one migrated
    assert sql(postgres, database, "SELECT count(*) FROM alembic_version") == [["1"]]


async def test_the_same_event_taken_by_two_replicas_is_recorded_once(
    postgres, database, tmp_path
) -> None:
    """A provider's retry sent to replica B after replica A took it: B's worker records it as a
    duplicate (in the shared index and in its own), in one statement for its batch."""
    a, b = tmp_path / "a", tmp_path / "b"
    await append_events(a, [delivery(1), delivery(2)])
    await append_events(b, [delivery(2), delivery(3)])  # 2: the retry, at the other replica
    for data_dir in (a, b):
        settings = make_settings(data_dir, index_url=database)
        with worker(settings, data_dir / store.JOURNAL_FILE, None) as forwarder:
            assert isinstance(forwarder.index, ReplicatedIndex)
            assert not await forwarder.forward_batch()  # one batch, less than full: all done
    name = {d: (d / REPLICA_FILE).read_text().strip() for d in (a, b)}
    assert name[a] != name[b]
    rows = sql(
        postgres,
        database,
        "SELECT replica, seq, message_id, duplicate, recipient FROM events ORDER BY n",
    )
    assert rows == [
        [name[a], "1", "1", "f", PHONE],
        [name[a], "2", "2", "f", PHONE],
        [name[b], "1", "2", "t", PHONE],
        [name[b], "2", "3", "f", PHONE],
    ]
    claims = sql(postgres, database, "SELECT replica, seq FROM claims ORDER BY replica, seq")
    assert claims == sorted([[name[a], "1"], [name[a], "2"], [name[b], "2"]])  # 2: A's, once
    assert sql(
        postgres, database, "SELECT replica, recorded_up_to FROM replicas ORDER BY 1"
    ) == sorted([[name[a], "2"], [name[b], "2"]])
    # B's own index says so too: its forwarder would not publish it, its counts leave it out
    assert index.duplicates(b, 0, 2) == {1}
    assert index.read(b).counts.duplicates == {"isendpro": 1}
    assert sum(index.read(b).counts.events.values()) == 1
    assert index.duplicates(a, 0, 2) == set()


async def test_a_lookup_finds_an_event_the_other_replica_took(database, tmp_path) -> None:
    a = tmp_path / "a"
    events = [delivery(35986), delivery(35987, recipient="+33699999999")]
    await append_events(a, events)
    with worker(make_settings(a, index_url=database), a / store.JOURNAL_FILE, None) as forwarder:
        await forwarder.forward_batch()
    other = SharedIndex(database, "b")  # replica B's handle: it never saw these events
    other.open()
    try:
        with other.connection() as conn:
            found = by_message(conn, "isendpro", "35986")
            by_number = by_phone(conn, [PHONE])
            nobody = by_phone(conn, ["+41790000000"])
    finally:
        other.close()
    assert [f.body for f in found] == [events[0].to_json()]  # the bytes as journaled
    assert found[0].seq == 1 and found[0].replica == (a / REPLICA_FILE).read_text().strip()
    assert [f.body for f in by_number] == [events[0].to_json()]
    assert nobody == []


def _record(seq: int, id_: str, received_at: float, *, duplicate: bool = False) -> Record:
    columns = (
        str(seq),
        None,
        "delivery",
        "delivered",
        received_at,
        "sms",
        None,
        1,
        None,
        None,
        PHONE,
    )
    return Record(seq, id_, "isendpro", received_at, duplicate, columns, b'{"id": "%d"}' % seq)


def test_a_batch_recorded_again_gets_the_same_decisions_and_the_window_ends(database) -> None:
    """After a crash between the shared commit and the local one the batch is recorded again:
    the claims it took are its own. A copy past the window is a new event; within, a
    duplicate, in either replica's batch; a copy within one batch too."""
    a, b = SharedIndex(database, "a"), SharedIndex(database, "b")
    a.open()
    b.open()
    try:
        batch = [_record(1, "e1", 1000.0), _record(2, "e2", 1000.0)]
        assert a.record(batch, WINDOW) == frozenset()
        assert a.record(batch, WINDOW) == frozenset()  # again: the same answer, nothing doubled
        later = [
            _record(1, "e1", 1000.0 + WINDOW - 1),  # within the window: A's
            _record(2, "e2", 1000.0 + WINDOW + 1),  # past it: a new event, B's claim now
            _record(3, "e3", 2000.0),
            _record(4, "e3", 2001.0, duplicate=True),  # B's local index found it a copy
        ]
        assert b.record(later, WINDOW) == frozenset({1})
        assert b.record(later, WINDOW) == frozenset({1})
        assert a.record([_record(3, "e2", 1000.0 + WINDOW + 2)], WINDOW) == frozenset({3})
        with a.connection() as conn:
            claims = conn.execute("SELECT id, replica, seq FROM claims ORDER BY id").fetchall()
            marks = conn.execute(
                "SELECT replica, seq, duplicate FROM events ORDER BY replica, seq"
            ).fetchall()
        assert claims == [("e1", "a", 1), ("e2", "b", 2), ("e3", "b", 3)]
        assert marks == [
            ("a", 1, False), ("a", 2, False), ("a", 3, True),
            ("b", 1, True), ("b", 2, False), ("b", 3, False), ("b", 4, True),
        ]  # fmt: skip
    finally:
        a.close()
        b.close()


def test_replicas_recording_the_same_events_at_once_publish_each_once(database) -> None:
    """Three replicas record overlapping batches at the same time (ids in different orders):
    each id is published by exactly one of them, and no statement deadlocks (claims are taken
    in id order)."""
    ids = [f"e{i:04d}" for i in range(600)]
    replicas = [SharedIndex(database, name) for name in ("a", "b", "c")]
    kept: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run(shared: SharedIndex, order: list[str]) -> None:
        try:
            mine: list[str] = []
            for start in range(0, len(order), 100):  # batches of 100, as they come
                chunk = order[start : start + 100]
                batch = [_record(start + i + 1, id_, 1000.0 + i) for i, id_ in enumerate(chunk)]
                taken = shared.record(batch, WINDOW)
                mine += [r.id for r in batch if r.seq not in taken]
            kept[shared.replica] = mine
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    orders = [ids, ids[::-1], ids[300:] + ids[:300]]
    for shared in replicas:
        shared.open()
    try:
        threads = [
            threading.Thread(target=run, args=(shared, order))
            for shared, order in zip(replicas, orders, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for shared in replicas:
            shared.close()
    assert not errors
    published = [id_ for mine in kept.values() for id_ in mine]
    assert sorted(published) == ids  # every id once, by one replica or another


def test_batches_are_numbered_in_the_order_they_commit(postgres, database) -> None:
    """The console's live view polls on ``n``: a batch numbered first and committed second
    would never be shown by a view that saw the other one. While a replica's recording
    transaction is open, another replica's waits for it, and is numbered after it."""
    a, b = SharedIndex(database, "a"), SharedIndex(database, "b")
    a.open()
    b.open()
    recorded = threading.Event()

    def record_b() -> None:
        b.record([_record(1, "e2", 1000.0)], WINDOW)
        recorded.set()

    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    thread = threading.Thread(target=record_b)
    try:
        a.migrate()
        with a.connection() as held:  # a's batch numbered, not committed yet
            a._record(held, [_record(1, "e1", 1000.0)], WINDOW)
            thread.start()
            wait_until(lambda: sql(postgres, database, waiting) == [["1"]], timeout=20)
            assert not recorded.is_set()
        thread.join(20)
        assert recorded.is_set()
        rows = sql(postgres, database, "SELECT replica, seq FROM events ORDER BY n")
        assert rows == [["a", "1"], ["b", "1"]]
    finally:
        thread.join(20)
        a.close()
        b.close()


async def test_the_database_away_keeps_the_batch_in_the_journal_until_it_is_back(
    postgres, database, tmp_path
) -> None:
    """Nothing is decided while the shared index cannot be reached: the local index does not
    move either (a decision made without the other replicas could publish a copy); back, the
    batch is recorded and the worker goes on."""
    a = tmp_path / "a"
    await append_events(a, [delivery(1)])
    settings = make_settings(a, index_url=database, index_timeout=1.0)
    with worker(settings, a / store.JOURNAL_FILE, None) as forwarder:
        assert not await forwarder.forward_batch()
        await append_events(a, [delivery(2)])
        try:
            postgres.stop()
            try:
                with pytest.raises(IndexUnavailable):  # nothing recorded, nothing decided
                    await forwarder.forward_batch()
                forwarder.start()  # the worker's loop: it pauses, says so in /metrics
                await eventually(partial(_gauge_is, a, 0.0))
                assert forwarder.index.cursor == 1
                assert index.read(a).cursor == 1
            finally:
                postgres.start()
            await eventually(partial(_gauge_is, a, 1.0))  # back: recorded, and said
            assert forwarder.index.cursor == 2
        finally:
            await forwarder.stop(5)
    assert sql(postgres, database, "SELECT seq FROM events ORDER BY seq") == [["1"], ["2"]]


async def _gauge_is(data_dir: Path, value: float) -> bool:
    """``hub_shared_index_connected`` is ``value``, as the hub's ``/metrics`` reads it from the
    worker's file."""
    collector = progress.ProgressCollector(data_dir, ["isendpro"], forwarding=False, shared=True)
    found = [f for f in collector.collect() if f.name == "hub_shared_index_connected"]
    return float(found[0].samples[0].value) == value


def test_an_index_url_that_is_no_postgresql_one_is_one_line_never_repeated(tmp_path) -> None:
    url = "mysql://hub:s3cret@127.0.0.1/hub"
    env = {"HUB_DATA_DIR": str(tmp_path), "HUB_INDEX_URL": url, "PATH": "/usr/bin:/bin"}
    proc = run_hub("forward", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hub: HUB_INDEX_URL: expected postgresql://"), proc.stderr
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["serve", "forward"])
def test_an_index_url_without_the_postgres_extra_is_one_line(tmp_path, command) -> None:
    """The driver blocked (as where ``callback-hub[postgres]`` is not installed): the hub says
    what to install and exits 2, rather than a worker failing at each restart."""
    env = {
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_INDEX_URL": "postgresql://hub:s3cret@127.0.0.1:1/hub",
        "PATH": "/usr/bin:/bin",
    }
    blocked = (
        "import sys; sys.modules['psycopg'] = None; from hub.cli import main;"
        f" sys.exit(main([{command!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", blocked], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "hub: HUB_INDEX_URL needs the postgres extra: pip install 'callback-hub[postgres]'\n"
    )
