"""The forwarder's progress, in a SQLite file of its own beside the journal.

The forwarder runs in a process of its own (``hub forward``) while the hub's journal writer
commits callbacks. Had it marked events in the journal, each mark would have waited for the
journal's write lock, and made callbacks wait for it. It only reads the journal, and writes here:

- ``cursor``: every event with ``seq`` up to it was confirmed by the broker. Events leave in
  ``seq`` order and only a confirmed prefix moves the cursor, so one number says it all.
- what the hub's ``/metrics`` shows of the forwarder (see :class:`ProgressCollector`): events
  forwarded per provider, the confirm-time histogram, whether the broker is connected.

Both are written in one transaction after each confirmed batch; a process crash loses none of
it, a power loss may take the cursor back a little (those events are sent again).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

PROGRESS_FILE = "forwarder.sqlite3"
CONFIRM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    cursor INTEGER NOT NULL,
    state  BLOB NOT NULL
);
"""


@dataclass(slots=True)
class Progress:
    cursor: int = 0
    """Every event with ``seq`` up to this one is confirmed by the broker."""
    forwarded: dict[str, int] = field(default_factory=dict)
    """Events confirmed, by provider (since the progress file was created)."""
    confirm_counts: list[int] = field(default_factory=lambda: [0] * (len(CONFIRM_BUCKETS) + 1))
    """Batches by confirm time, one count per bucket of :data:`CONFIRM_BUCKETS` then +Inf (not
    cumulative)."""
    confirm_sum: float = 0.0
    broker_connected: bool = False

    def confirmed(self, seq: int, providers: Mapping[str, int], seconds: float | None) -> None:
        """Events up to ``seq`` are confirmed (``providers``: how many each); ``seconds``: the
        batch's confirm time, if it was confirmed whole."""
        self.cursor = max(self.cursor, seq)
        for provider, count in providers.items():
            self.forwarded[provider] = self.forwarded.get(provider, 0) + count
        if seconds is not None:
            index = next(
                (i for i, bound in enumerate(CONFIRM_BUCKETS) if seconds <= bound),
                len(CONFIRM_BUCKETS),
            )
            self.confirm_counts[index] += 1
            self.confirm_sum += seconds

    def _state(self) -> bytes:
        return orjson.dumps(
            {
                "forwarded": self.forwarded,
                "confirm_counts": self.confirm_counts,
                "confirm_sum": self.confirm_sum,
                "broker_connected": self.broker_connected,
            }
        )

    @classmethod
    def _of(cls, cursor: int, state: bytes) -> Progress:
        doc = orjson.loads(state)
        progress = cls(cursor=cursor, forwarded=dict(doc.get("forwarded", {})))
        counts = doc.get("confirm_counts")
        if isinstance(counts, list) and len(counts) == len(progress.confirm_counts):
            progress.confirm_counts = [int(c) for c in counts]
            progress.confirm_sum = float(doc.get("confirm_sum", 0.0))
        progress.broker_connected = bool(doc.get("broker_connected", False))
        return progress


class ProgressFile:
    """The forwarder's handle on its progress file (one writer: the forwarder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # Not synced at each save: a cursor that goes back after a power loss (never after a
        # crash of the process) only sends some events again, which at least once allows; and
        # the forwarder saves after every batch, a sync each time cost more than the batch.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)

    @classmethod
    def open(cls, data_dir: Path, journal: Path) -> ProgressFile:
        """Opens (or creates) the progress of ``journal``'s forwarding. A journal written by a
        hub that marked events in it (``forwarded_at``) starts from its forwarded prefix."""
        data_dir.mkdir(parents=True, exist_ok=True)
        progress = cls(data_dir / PROGRESS_FILE)
        if progress._conn.execute("SELECT 1 FROM progress").fetchone() is None:
            progress.save(Progress(cursor=_marked_prefix(journal)))
        return progress

    def load(self) -> Progress:
        cursor, state = self._conn.execute("SELECT cursor, state FROM progress").fetchone()
        return Progress._of(cursor, state)

    def save(self, progress: Progress) -> None:
        """Writes the progress (a crash of the process after this never sends these again)."""
        self._conn.execute(
            "INSERT INTO progress (id, cursor, state) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, state = excluded.state",
            (progress.cursor, progress._state()),
        )

    def close(self) -> None:
        self._conn.close()


def _marked_prefix(journal: Path) -> int:
    """The last ``seq`` before the first event a previous hub left unmarked (0: none)."""
    if not journal.exists():
        return 0
    with closing(sqlite3.connect(journal.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if "forwarded_at" not in columns:
            return 0
        (first,) = conn.execute("SELECT MIN(seq) FROM events WHERE forwarded_at IS NULL").fetchone()
        if first is not None:
            return int(first) - 1
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(last)


def read(data_dir: Path) -> Progress | None:
    """The progress as last saved, read-only (None: no forwarder ever ran here)."""
    path = data_dir / PROGRESS_FILE
    if not path.exists():
        return None
    with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT cursor, state FROM progress").fetchone()
    return Progress._of(*row) if row is not None else None


class ProgressCollector(Collector):
    """The forwarder's metrics, read at scrape time from its progress file and the journal, so
    that the hub's ``/metrics`` shows them wherever the forwarder runs."""

    def __init__(
        self, data_dir: Path, journal: Path, providers: list[str], *, forwarding: bool
    ) -> None:
        self.data_dir = data_dir
        self.journal = journal
        self.providers = providers
        self.forwarding = forwarding
        """False without a broker: nothing waits to be forwarded, no broker to be up."""

    def collect(self) -> Iterator[Metric]:
        progress = read(self.data_dir) or Progress()
        backlog, oldest = _behind(self.journal, progress.cursor) if self.forwarding else (0, 0.0)
        forwarded = CounterMetricFamily(
            "hub_forwarded_events", "Events the broker confirmed.", labels=("provider",)
        )
        for provider in sorted({*self.providers, *progress.forwarded}):
            forwarded.add_metric((provider,), progress.forwarded.get(provider, 0))
        yield forwarded
        bounds = [repr(float(b)) for b in CONFIRM_BUCKETS] + ["+Inf"]
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, progress.confirm_counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "hub_forward_confirm_duration_seconds",
            "Time from publishing a batch of events to the broker's last confirm.",
            buckets=buckets,
            sum_value=progress.confirm_sum,
        )
        yield GaugeMetricFamily(
            "hub_journal_backlog_events",
            "Events journaled and not yet forwarded to the broker.",
            value=backlog,
        )
        yield GaugeMetricFamily(
            "hub_journal_oldest_unforwarded_age_seconds",
            "Age of the oldest event not yet forwarded (0 when none waits).",
            value=oldest,
        )
        if not self.forwarding:  # no such series without a broker: nothing to alert on
            return
        yield GaugeMetricFamily(
            "hub_broker_connected",
            "1 when the forwarder's broker connection is up, 0 otherwise.",
            value=float(progress.broker_connected),
        )


def _behind(journal: Path, cursor: int) -> tuple[int, float]:
    """Events after ``cursor`` in the journal, and the age of the first one (seconds).

    ``seq`` has no gaps above the cursor (with a broker only forwarded events are pruned), so
    the backlog is a difference, not a count over what may be millions of rows."""
    if not journal.exists():
        return 0, 0.0
    with closing(sqlite3.connect(journal.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        row = conn.execute(
            "SELECT received_at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (cursor,)
        ).fetchone()
    backlog = max(int(last) - cursor, 0)
    return backlog, max(time.time() - row[0], 0.0) if row is not None else 0.0
