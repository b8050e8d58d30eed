"""An upgrade loses nothing: the current hub started on a data directory written by the hub of
the journal's first format (``tests/upgrade/v0.1``, made by ``tests/upgrade/make_fixture.py``)
takes it over as it is."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from hub import journaled
from hub.app import create_app
from hub.settings import Settings
from sinks import journal as store
from sinks import progress
from sinks.memory import MemorySink
from tests.support import LOOPBACK, dlr_query, eventually, metric
from tests.upgrade.make_fixture import BAD_QUERY, RETRIED, WAITING, delivery_path

FIXTURE = Path(__file__).parent / "upgrade" / "v0.1"
CENTURY = 100 * 365 * 86400.0
"""The fixture's events were received when it was made: window and retention reach back to
them, as 7 and 14 days reach back to yesterday's."""


def copy_of_fixture(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE, data_dir)
    return data_dir


async def test_the_new_hub_takes_over_a_data_directory_of_the_old_one(aiohttp_client, tmp_path):
    data_dir = copy_of_fixture(tmp_path)
    settings = Settings(
        data_dir=data_dir,
        allow_ecall=LOOPBACK,
        forwarder="inline",
        dedup_window=CENTURY,
        retention=CENTURY,
    )
    memory = MemorySink()
    client = await aiohttp_client(create_app(settings, sink=memory))
    journal = data_dir / store.JOURNAL_FILE

    async def caught_up() -> bool:
        last = store.last_seq(journal)
        return journaled.processed(data_dir) == last and progress.cursor(data_dir) == last

    # the backlog not yet forwarded is forwarded, in order, once
    await eventually(caught_up)
    assert [e.data.message_id for e in memory.events] == [str(i) for i in WAITING]

    # the secrets carry over: the providers' URLs still answer
    path = delivery_path(data_dir)
    # the deduplication window carries over: a retry of a report forwarded by the old hub, and
    # of one it journaled, are acknowledged, journaled, and never published again
    for i in (RETRIED, WAITING[0]):
        assert await (await client.get(f"{path}?{dlr_query(i)}")).text() == "validation"
    assert await (await client.get(f"{path}?{dlr_query(99)}")).text() == "validation"
    await eventually(caught_up)
    assert [e.data.message_id for e in memory.events] == [*(str(i) for i in WAITING), "99"]
    text = await (await client.get("/metrics")).text()
    assert metric(text, "hub_duplicate_events_total", provider="isendpro") == 2
    counts = journaled.counts(data_dir)
    assert counts.duplicates == 1 + 2  # the old hub's count, and the worker's since
    assert counts.events == 7  # reports 1 to 6, and 99

    # the quarantine carries over, as it was
    assert metric(text, "hub_quarantine_requests") == 1
    [entry] = store.quarantined(journal)
    assert entry.entry.query == BAD_QUERY.encode()

    # the journal is insert-only now: the old secondary indexes are gone
    with closing(sqlite3.connect(journal)) as conn:
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert not indexes & {"events_id", "events_received"}


def test_the_fixture_is_what_the_old_hub_left(tmp_path) -> None:
    """The fixture itself (on a copy: SQLite writes beside a WAL database it reads): what the
    test above relies on (a fixture rewritten by mistake with the new code would have no old
    indexes, no old duplicate count)."""
    data_dir = copy_of_fixture(tmp_path)
    journal = data_dir / store.JOURNAL_FILE
    with closing(sqlite3.connect(journal)) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        (seqs,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        (duplicates,) = conn.execute(
            "SELECT value FROM counters WHERE name = 'duplicates'"
        ).fetchone()
    assert {"events_id", "events_received"} <= names
    assert (seqs, duplicates) == (6, 1)
    assert progress.cursor(data_dir) == 3
