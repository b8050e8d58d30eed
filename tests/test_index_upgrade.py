"""An index of the first format (the hub before the read model, commit 6cc6346) is taken over as
it is: its rows, duplicate marks, counts and cursor kept, the read model's columns added and
filled by the pipeline worker from the journal's bodies, a batch at a time; the read model's
readers wait for the upgrade rather than read a file they do not know."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from core.models import Channel, Event, EventData, Kind, Provider, State
from hub import readmodel
from hub.app import create_app
from hub.lookup import query
from sinks import index
from sinks import journal as store
from sinks.index import IndexFile
from sinks.journal import Journal
from tests.support import OPERATOR, eventually, make_settings

FIRST_FORMAT = """
CREATE TABLE IF NOT EXISTS indexed (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    provider     TEXT NOT NULL,
    message_id   TEXT,
    reference    TEXT,
    phone        TEXT,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    time         REAL NOT NULL,
    received_at  REAL NOT NULL,
    duplicate    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS indexed_id ON indexed (id, received_at) WHERE duplicate = 0;
CREATE INDEX IF NOT EXISTS indexed_message ON indexed (provider, message_id);
CREATE INDEX IF NOT EXISTS indexed_reference ON indexed (reference);
CREATE INDEX IF NOT EXISTS indexed_phone ON indexed (phone);
CREATE INDEX IF NOT EXISTS indexed_time ON indexed (time);
CREATE INDEX IF NOT EXISTS indexed_state ON indexed (state);
CREATE INDEX IF NOT EXISTS indexed_duplicates ON indexed (seq) WHERE duplicate = 1;
CREATE TABLE IF NOT EXISTS worker (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    cursor INTEGER NOT NULL,
    counts BLOB NOT NULL
);
"""
"""``sinks/index.py``'s schema at commit 6cc6346, as it wrote it (``user_version`` 0)."""

PHONE = "+33612345678"
OLD = 7
"""Events the old hub indexed (the 4th a retry of the 3rd: a duplicate); two more after them
were journaled and not yet indexed."""


def reply(n: int) -> Event:
    when = datetime.now(UTC) - timedelta(minutes=10 - n)
    data = EventData(
        provider=Provider.SMSMODE,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        message_id=f"in-{n}",
        related_message_id="out-1",
        sender=PHONE,
        recipient="36034",
        raw={"n": n},
        received_at=when,
    )
    return Event.of(data, when)


def events() -> list[Event]:
    made = [reply(n) for n in range(1, OLD + 3)]
    retry = msgspec.structs.replace(
        made[2], data=msgspec.structs.replace(made[2].data, received_at=made[3].data.received_at)
    )
    return [*made[:3], retry, *made[4:]]


@pytest.fixture
def old_data_dir(tmp_path: Path) -> Path:
    """A journal of 9 events and an index of the first format holding the first 7."""
    data_dir = tmp_path / "data"

    async def write() -> None:
        journal = Journal.open(data_dir)
        try:
            await journal.append(events())
        finally:
            journal.close()

    asyncio.run(write())
    rows = store.select(data_dir / store.JOURNAL_FILE)
    with closing(sqlite3.connect(data_dir / index.INDEX_FILE)) as conn:
        conn.executescript(FIRST_FORMAT)
        conn.executemany(
            "INSERT INTO indexed VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    *(r.seq, r.envelope.id, "smsmode", r.event().data.message_id, None, PHONE),
                    *("inbound", "received", r.envelope.time.timestamp(), r.received_at),
                    int(r.seq == 4),
                )
                for r in rows[:OLD]
            ],
        )
        counts = index.Counts({("smsmode", "sms", "inbound", "received", ""): 6}, {"smsmode": 1})
        conn.execute("INSERT INTO worker VALUES (1, ?, ?)", (OLD, counts.dump()))
        conn.commit()
    return data_dir


def test_the_first_format_is_upgraded_in_place(old_data_dir) -> None:
    # before the worker has opened it, readers wait rather than misread it
    with pytest.raises(index.NotReady):
        readmodel.events(old_data_dir, query({}))
    idx = IndexFile.open(old_data_dir)
    try:
        assert (idx.cursor, idx.refilling) == (OLD, (0, OLD))
        assert idx.counts.duplicates == {"smsmode": 1}
        with closing(sqlite3.connect(old_data_dir / index.INDEX_FILE)) as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            marks = conn.execute("SELECT seq FROM indexed WHERE duplicate = 1").fetchall()
            (counted,) = conn.execute("SELECT SUM(count) FROM minutes").fetchone()
        assert version == index.VERSION
        assert counted == OLD - 1  # the old rows counted by minute, the duplicate left out
        assert {"indexed_sender", "indexed_related"} <= names
        assert "indexed_phone" not in names
        assert marks == [(4,)]
        # readable now; the old rows hold no sender yet: they are found once refilled
        assert readmodel.events(old_data_dir, query({"phone": "0612345678"})).items == []
        assert len(readmodel.events(old_data_dir, query({})).items) == OLD - 1
    finally:
        idx.close()
    again = IndexFile.open(old_data_dir)  # a second opening changes nothing
    assert again.refilling == (0, OLD)
    again.close()


async def test_the_worker_fills_the_old_rows_from_the_journal(aiohttp_client, old_data_dir) -> None:
    settings = make_settings(old_data_dir, forward_batch=2)  # several batches of refill
    client = await aiohttp_client(create_app(settings))

    async def found() -> list[str]:
        params = {"phone": "06 12 34 56 78"}
        answer = await client.get("/api/v1/events", params=params, headers=OPERATOR)
        assert answer.status == 200
        return [i["event"]["data"]["message_id"] for i in (await answer.json())["items"]]

    expected = [f"in-{n}" for n in (9, 8, 7, 6, 5, 3, 2, 1)]  # the retry (4th) left out

    async def filled() -> bool:
        return await found() == expected

    await eventually(filled)
    answer = await client.get("/api/v1/messages/smsmode/out-1", headers=OPERATOR)
    replies = (await answer.json())["replies"]
    assert [r["event"]["data"]["message_id"] for r in replies] == expected[::-1]
    assert index.read(old_data_dir).counts.duplicates == {"smsmode": 1}
    with closing(sqlite3.connect(old_data_dir / index.INDEX_FILE)) as conn:
        (after, up_to) = conn.execute("SELECT refill_after, refill_up_to FROM worker").fetchone()
    assert after == up_to == OLD
