"""Turning the shared index on keeps the history: a hub that ran alone (its local index only)
given ``HUB_INDEX_URL`` records there, once, the events its local index had, read from its
journal, with the local decisions; a restart mid-way goes on where it stood. On a real
PostgreSQL (``tests.harness.postgres``), the worker as ``hub forward`` opens it
(``hub.forward_process.worker``), and through a real ``hub serve``.

In CI (``CI=true``, or ``HUB_REQUIRE_BROKER=1`` as ``make test`` sets) these fail when
PostgreSQL cannot start; elsewhere they skip, saying why (``postgres`` in ``tests.conftest``)."""

from __future__ import annotations

import logging
import os
import signal
import urllib.request
from pathlib import Path

from hub.forward_process import worker
from hub.shared_index import REPLICA_FILE, ReplicatedIndex
from sinks import index
from sinks import journal as store
from tests.harness.hubproc import HubProcess
from tests.support import (
    DLR,
    append_events,
    dlr_query,
    event,
    eventually,
    make_settings,
    sql,
    wait_until,
)

START = "shared index: recording the local index's events"
END = "shared index: the local index's events recorded up to event"


async def _run_alone(data_dir: Path, count: int) -> None:
    """A hub without ``HUB_INDEX_URL``: ``count`` events indexed, the last a retry of the first."""
    events = [event(i) for i in range(1, count)]
    await append_events(data_dir, [*events, events[0]])
    with worker(make_settings(data_dir), data_dir / store.JOURNAL_FILE, None) as forwarder:
        while await forwarder.forward_batch():
            pass
    assert index.read(data_dir).cursor == count
    assert index.duplicates(data_dir, 0, count) == {count}


def _recorded(postgres, database: str, data_dir: Path) -> list[list[str]]:
    name = (data_dir / REPLICA_FILE).read_text().strip()
    return sql(
        postgres,
        database,
        f"SELECT seq, duplicate FROM events WHERE replica = '{name}' ORDER BY seq",  # noqa: S608
    )


async def test_a_hub_that_ran_alone_records_its_history_once(
    postgres, database, tmp_path, caplog
) -> None:
    """Its events and local decisions, a batch at a time after its new events: an id another
    replica claimed first is a duplicate in the shared index, not in its own (published)."""
    caplog.set_level(logging.INFO, logger="hub.forwarder")
    a, b = tmp_path / "a", tmp_path / "b"
    await _run_alone(a, 7)
    await append_events(
        b, [event(3)]
    )  # replica B, on the shared index from the start, took 3 first
    with worker(make_settings(b, index_url=database), b / store.JOURNAL_FILE, None) as other:
        await other.forward_batch()
    await append_events(a, [event(100)])  # arrives at A after the restart: recorded as usual
    settings = make_settings(a, index_url=database, forward_batch=2)
    with worker(settings, a / store.JOURNAL_FILE, None) as forwarder:
        assert isinstance(forwarder.index, ReplicatedIndex)
        forwarder.start()
        await eventually(lambda: _done(forwarder.index))
        await forwarder.stop(5)
    rows = _recorded(postgres, database, a)
    assert rows == [
        ["1", "f"], ["2", "f"], ["3", "t"], ["4", "f"], ["5", "f"], ["6", "f"], ["7", "t"],
        ["8", "f"],
    ]  # fmt: skip
    assert index.duplicates(a, 0, 8) == {7}  # its own decisions kept: 3 was published alone
    starts = [r.getMessage() for r in caplog.records if r.getMessage().startswith(START)]
    ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith(END)]
    assert starts == [f"{START} 1 to 7"]
    assert ends == [f"{END} 7"]
    # a second start: nothing more to record, nothing said
    caplog.clear()
    with worker(settings, a / store.JOURNAL_FILE, None) as forwarder:
        assert not await forwarder.backfill_batch()
    assert not [r for r in caplog.records if r.getMessage().startswith(START)]
    assert _recorded(postgres, database, a) == rows
    assert sql(postgres, database, "SELECT count(*) FROM claims") == [["7"]]  # 1-6, 100


async def _done(replicated: object) -> bool:
    assert isinstance(replicated, ReplicatedIndex)
    return replicated.backfilling() is None


async def test_a_restart_mid_backfill_goes_on_where_it_stood(
    postgres, database, tmp_path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="hub.forwarder")
    a = tmp_path / "a"
    await _run_alone(a, 7)
    settings = make_settings(a, index_url=database, forward_batch=2)
    with worker(settings, a / store.JOURNAL_FILE, None) as forwarder:
        assert await forwarder.backfill_batch()  # one batch of two, then a crash
    assert _recorded(postgres, database, a) == [["1", "f"], ["2", "f"]]
    progress = "SELECT recorded_up_to, backfill_after, backfill_up_to FROM replicas"
    assert sql(postgres, database, progress) == [["2", "2", "7"]]
    caplog.clear()
    with worker(settings, a / store.JOURNAL_FILE, None) as forwarder:
        while await forwarder.backfill_batch():
            pass
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith(START)] == [
        f"{START} 3 to 7"
    ]
    assert [row[0] for row in _recorded(postgres, database, a)] == [str(i) for i in range(1, 8)]
    assert sql(postgres, database, progress) == [["7", "7", "7"]]
    assert sql(postgres, database, "SELECT count(*) FROM claims") == [["6"]]


async def test_a_hub_that_ran_alone_for_a_while_records_only_the_gap(
    postgres, database, tmp_path
) -> None:
    """On the shared index, then alone (``HUB_INDEX_URL`` unset), then on it again: what it
    indexed alone is recorded, what was there already is not asked again."""
    a = tmp_path / "a"
    await append_events(a, [event(1), event(2)])
    shared = make_settings(a, index_url=database)
    with worker(shared, a / store.JOURNAL_FILE, None) as forwarder:
        await forwarder.forward_batch()
        assert await forwarder.backfill_batch() is False  # a new replica with nothing: none
    await append_events(a, [event(3), event(4)])
    with worker(make_settings(a), a / store.JOURNAL_FILE, None) as forwarder:
        await forwarder.forward_batch()
    with worker(shared, a / store.JOURNAL_FILE, None) as forwarder:
        assert isinstance(forwarder.index, ReplicatedIndex)
        assert forwarder.index.backfilling() == (2, 4)
        assert not await forwarder.backfill_batch()
    assert [row[0] for row in _recorded(postgres, database, a)] == ["1", "2", "3", "4"]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def test_a_real_hub_given_the_shared_index_records_what_it_took_alone(
    postgres, database, tmp_path
) -> None:
    """``hub serve`` alone takes callbacks, stops, starts with ``HUB_INDEX_URL``: the shared
    index gets them all, once, the callbacks answered meanwhile; its worker SIGKILLed once
    the backfill has begun (the supervisor starts it again) and the hub restarted after: no
    event recorded twice, the end said once."""
    count = 40
    data_dir = tmp_path / "a"
    with HubProcess(data_dir, {"HUB_FORWARD_BATCH": "1"}) as hub:
        for i in range(1, count):
            assert _get(hub.url + f"{DLR}?{dlr_query(i)}") == "validation"
        assert _get(hub.url + f"{DLR}?{dlr_query(1)}") == "validation"  # a retry
        wait_until(lambda: index.read(data_dir).cursor == count, failure=hub.log_tail)
    assert index.duplicates(data_dir, 0, count) == {count}

    def backfilled() -> list[list[str]]:
        try:
            return sql(postgres, database, "SELECT backfill_after, backfill_up_to FROM replicas")
        except RuntimeError:  # the tables are made by the worker's migration
            return []

    overrides = {"HUB_INDEX_URL": database, "HUB_FORWARD_BATCH": "1"}
    with HubProcess(data_dir, overrides) as hub:
        wait_until(lambda: backfilled() != [] and backfilled()[0][0] != "0", failure=hub.log_tail)
        [child] = hub.children()
        os.kill(child, signal.SIGKILL)  # mid-way, most likely (batches of one)
        assert _get(hub.url + f"{DLR}?{dlr_query(1000)}") == "validation"  # answered meanwhile
        wait_until(lambda: backfilled() == [[str(count)] * 2], failure=hub.log_tail)
        hub.terminate()
        hub.start()
        wait_until(lambda: len(_recorded(postgres, database, data_dir)) == count + 1)
    rows = _recorded(postgres, database, data_dir)
    assert [row[0] for row in rows] == [str(i) for i in range(1, count + 2)]  # each once
    assert [row[0] for row in rows if row[1] == "t"] == [str(count)]  # the retry, as locally
    log = hub.log_file.read_text()
    assert log.count(END) == 1
    assert "612345678" not in log  # no phone number in what it said
