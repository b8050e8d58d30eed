"""What the worker counted and how far it got, read by anyone (``/metrics``, ``hub journal
stats``, the status API): its cursor, its counts of events and duplicates, the duplicates'
``seq``, and the Prometheus collector that exports the counts at scrape time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from sinks.index.schema import INDEX_FILE, read_only

EVENT_LABELS = ("provider", "channel", "kind", "state", "failure")


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


def marked_duplicates(conn: sqlite3.Connection, after: int, up_to: int) -> set[int]:
    rows = conn.execute(
        "SELECT seq FROM indexed WHERE duplicate = 1 AND seq > ? AND seq <= ?", (after, up_to)
    )
    return {int(seq) for (seq,) in rows}


def read(data_dir: Path) -> State:
    """The worker's cursor and counts as last saved (no file yet: nothing indexed)."""
    conn = read_only(data_dir / INDEX_FILE)
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
    conn = read_only(data_dir / INDEX_FILE)
    if conn is None:
        return set()
    with closing(conn):
        return marked_duplicates(conn, after, up_to)


def retained_duplicates(data_dir: Path) -> int:
    """How many events the index holds marked duplicate (those the journal still holds, as
    both are pruned at the same age)."""
    conn = read_only(data_dir / INDEX_FILE)
    if conn is None:
        return 0
    with closing(conn):
        try:
            (count,) = conn.execute("SELECT COUNT(*) FROM indexed WHERE duplicate = 1").fetchone()
        except sqlite3.OperationalError:  # created, its tables not yet
            return 0
    return int(count)


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
