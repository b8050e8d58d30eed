"""The pipeline worker's own file, ``index.sqlite3`` beside the journal: what it decided about
each journaled event, how far it got, and its counts.

The journal is insert-only: a callback's events are appended and synced, nothing is looked up
on the way (no deduplication, no secondary index). Everything else about an event is decided
here, after the acknowledgement, by the one worker that reads the journal in ``seq`` order:

- ``indexed``: one row per journaled event (its ``seq``), with what the console looks events up
  by (provider and message id, reference, the other party's phone number, time, state) and
  whether it is a **duplicate**: a provider's retry, an event whose id was already journaled
  (and not itself a duplicate) within the deduplication window before it. A duplicate is never
  published, shown or replayed;
- ``worker``: the worker's cursor (every event up to it is indexed) and its counts: events by
  provider, channel, kind, state and failure (duplicates left out), duplicates by provider,
  read by the hub's ``/metrics`` at each scrape (:class:`IndexCollector`).

Both are written in one transaction per batch, not synced at each (``synchronous=NORMAL``): after
a power loss the cursor may go back and the same events be indexed again, with the same
decisions (a duplicate is a fact of the journal: ids and reception times).

This module opens only its own file, never the journal nor the forwarder's cursor; what it is
given is the journal's ``seq``, event id, reception time and CloudEvents body.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

INDEX_FILE = "index.sqlite3"
EVENT_LABELS = ("provider", "channel", "kind", "state", "failure")
_CHUNK = 400
"""Ids per lookup statement (within SQLite's bound parameters)."""

SCHEMA = """
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

Journaled = tuple[int, str, float, bytes]
"""An event as the journal gives it to the worker: ``seq``, event id, reception time (epoch
seconds), CloudEvents JSON."""


@dataclass(slots=True)
class Counts:
    """What the worker counted since its file was created."""

    events: dict[tuple[str, ...], int] = field(default_factory=dict)
    """Events that are not duplicates, by :data:`EVENT_LABELS`."""
    duplicates: dict[str, int] = field(default_factory=dict)
    """Duplicates, by provider."""

    def dump(self) -> bytes:
        return orjson.dumps(
            {"events": [[*k, n] for k, n in self.events.items()], "duplicates": self.duplicates}
        )

    @classmethod
    def load(cls, blob: bytes) -> Counts:
        doc = orjson.loads(blob)
        events = {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in doc.get("events", [])}
        return cls(events, {str(k): int(v) for k, v in doc.get("duplicates", {}).items()})


@dataclass(frozen=True, slots=True)
class State:
    cursor: int
    """Every journaled event with ``seq`` up to it is indexed."""
    counts: Counts


class IndexFile:
    """The worker's handle on its file (one writer: the worker; one thread at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # see the module's docstring
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)
        row = self._conn.execute("SELECT cursor, counts FROM worker").fetchone()
        self.cursor: int = int(row[0]) if row is not None else 0
        self.counts = Counts.load(row[1]) if row is not None else Counts()

    @classmethod
    def open(cls, data_dir: Path) -> IndexFile:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(data_dir / INDEX_FILE)

    def process(self, events: Sequence[Journaled], window: float) -> list[bool]:
        """Indexes events that follow the cursor, in ``seq`` order; for each, whether it is a
        duplicate. Moves the cursor past the last of them, in the same transaction."""
        events = [e for e in events if e[0] > self.cursor]
        if not events:
            return []
        latest = self._latest({e[1] for e in events})
        counts = Counts(dict(self.counts.events), dict(self.counts.duplicates))
        rows: list[tuple[Any, ...]] = []
        flags: list[bool] = []
        for seq, id_, received_at, body in events:
            doc = orjson.loads(body)
            data = doc.get("data") or {}
            provider = str(data.get("provider", ""))
            last = latest.get(id_)
            duplicate = last is not None and last >= received_at - window
            if duplicate:
                counts.duplicates[provider] = counts.duplicates.get(provider, 0) + 1
            else:
                latest[id_] = received_at  # a later copy in the same batch is a duplicate
                key = tuple(str(data.get(label) or "") for label in EVENT_LABELS)
                counts.events[key] = counts.events.get(key, 0) + 1
            flags.append(duplicate)
            rows.append((seq, id_, provider, *_looked_up(doc, data), received_at, int(duplicate)))
        cursor = events[-1][0]
        with _transaction(self._conn):
            self._conn.executemany(
                "INSERT OR REPLACE INTO indexed (seq, id, provider, message_id, reference, phone,"
                " kind, state, time, received_at, duplicate) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._save(cursor, counts)
        self.cursor, self.counts = cursor, counts
        return flags

    def duplicates(self, after: int, up_to: int) -> set[int]:
        """The ``seq`` of the duplicates above ``after`` and up to ``up_to``."""
        return _duplicates(self._conn, after, up_to)

    def prune(self, received_before: float, chunk: int = 5000) -> int:
        """Forgets events received before the given time (older than the journal's retention,
        itself at least the deduplication window), ``chunk`` a transaction; how many."""
        deleted = 0
        while True:
            with _transaction(self._conn):
                count = self._conn.execute(
                    "DELETE FROM indexed WHERE seq IN (SELECT seq FROM indexed"
                    " WHERE received_at < ? ORDER BY seq LIMIT ?)",
                    (received_before, chunk),
                ).rowcount
            deleted += count
            if count < chunk:
                return deleted

    def close(self) -> None:
        self._conn.close()

    def _latest(self, ids: set[str]) -> dict[str, float]:
        """The last reception of each id among the events indexed and not duplicates."""
        latest: dict[str, float] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            latest.update(
                self._conn.execute(
                    f"SELECT id, MAX(received_at) FROM indexed WHERE id IN ({marks})"  # noqa: S608
                    " AND duplicate = 0 GROUP BY id",
                    chunk,
                ).fetchall()
            )
        return latest

    def _save(self, cursor: int, counts: Counts) -> None:
        self._conn.execute(
            "INSERT INTO worker (id, cursor, counts) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, counts = excluded.counts",
            (cursor, counts.dump()),
        )


def _looked_up(doc: dict[str, Any], data: dict[str, Any]) -> tuple[Any, ...]:
    """message id, reference, the other party's number, kind, state, event time (epoch)."""
    kind = str(data.get("kind", ""))
    phone = data.get("sender") if kind == "inbound" else data.get("recipient")
    when = doc.get("time")
    return (
        data.get("message_id"),
        data.get("reference"),
        phone,
        kind,
        str(data.get("state", "")),
        _epoch(when) if isinstance(when, str) else 0.0,
    )


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _duplicates(conn: sqlite3.Connection, after: int, up_to: int) -> set[int]:
    rows = conn.execute(
        "SELECT seq FROM indexed WHERE duplicate = 1 AND seq > ? AND seq <= ?", (after, up_to)
    )
    return {int(seq) for (seq,) in rows}


def _read_only(data_dir: Path) -> sqlite3.Connection | None:
    path = data_dir / INDEX_FILE
    if not path.exists():
        return None
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def read(data_dir: Path) -> State:
    """The worker's cursor and counts as last saved (no file yet: nothing indexed)."""
    conn = _read_only(data_dir)
    if conn is None:
        return State(0, Counts())
    with closing(conn):
        try:
            row = conn.execute("SELECT cursor, counts FROM worker").fetchone()
        except sqlite3.OperationalError:  # created, its tables not yet
            row = None
    return State(int(row[0]), Counts.load(row[1])) if row is not None else State(0, Counts())


def duplicates(data_dir: Path, after: int, up_to: int) -> set[int]:
    """The ``seq`` of the duplicates above ``after`` and up to ``up_to`` (read-only)."""
    conn = _read_only(data_dir)
    if conn is None:
        return set()
    with closing(conn):
        return _duplicates(conn, after, up_to)


class IndexCollector(Collector):
    """``hub_events_total`` and ``hub_duplicate_events_total``, read at scrape time from the
    worker's file, wherever the worker runs."""

    def __init__(self, data_dir: Path, providers: list[str]) -> None:
        self.data_dir = data_dir
        self.providers = providers

    def collect(self) -> Iterator[Metric]:
        counts = read(self.data_dir).counts
        events = CounterMetricFamily(
            "hub_events",
            "Events journaled, by the pipeline worker's count (duplicates left out; failure:"
            " permanent, temporary, or empty).",
            labels=EVENT_LABELS,
        )
        for key, count in sorted(counts.events.items()):
            events.add_metric(key, count)
        yield events
        duplicated = CounterMetricFamily(
            "hub_duplicate_events",
            "Events a provider sent again within the deduplication window: journaled, marked"
            " duplicate by the pipeline worker, never published.",
            labels=("provider",),
        )
        for provider in sorted({*self.providers, *counts.duplicates}):
            duplicated.add_metric((provider,), counts.duplicates.get(provider, 0))
        yield duplicated


def retained_duplicates(data_dir: Path) -> int:
    """How many events the index holds marked duplicate (those the journal still holds, as
    both are pruned at the same age)."""
    conn = _read_only(data_dir)
    if conn is None:
        return 0
    with closing(conn):
        try:
            (count,) = conn.execute("SELECT COUNT(*) FROM indexed WHERE duplicate = 1").fetchone()
        except sqlite3.OperationalError:  # created, its tables not yet
            return 0
    return int(count)
