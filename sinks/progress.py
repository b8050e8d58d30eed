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

This module opens only its own file, never the journal: what lies after the cursor in the
journal is joined above both (``hub.backlog``), and where a new file's cursor starts is the
caller's to say (``ProgressFile.open``'s ``start``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
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

from sinks.tallies import INF, cumulative

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
    index_connected: bool = False
    """The shared index (``HUB_INDEX_URL``) recorded the worker's last batch (False: it could
    not be reached, the events wait in the journal)."""
    unchecked_resends: int = 0
    """Batches sent again after an interruption without the sink saying what it had of them
    already (its stream gone, or too slow to read): each may have put copies on the broker."""
    confirmed_at: float = 0.0
    """When the cursor last moved (wall clock; 0: not known): what lies after the cursor was
    sent after it if at all, or within the publish timeout before it (the rest of a batch
    confirmed in part): ``Sink.already_published``'s ``since``."""

    def confirmed(self, seq: int, providers: Mapping[str, int], seconds: float | None) -> None:
        """Events up to ``seq`` are confirmed (``providers``: how many each); ``seconds``: the
        batch's confirm time, if it was confirmed whole."""
        self.cursor = max(self.cursor, seq)
        self.confirmed_at = time.time()
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
                "index_connected": self.index_connected,
                "unchecked_resends": self.unchecked_resends,
                "confirmed_at": self.confirmed_at,
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
        progress.index_connected = bool(doc.get("index_connected", False))
        progress.unchecked_resends = int(doc.get("unchecked_resends", 0))
        progress.confirmed_at = float(doc.get("confirmed_at", 0.0))
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
        # One row, saved after every batch: checkpointed every 100 pages, its WAL stays under
        # half a MiB (SQLite's 1000 would leave 4 MiB on disk, which HUB_JOURNAL_MAX_BYTES counts).
        self._conn.execute("PRAGMA wal_autocheckpoint=100")
        self._conn.executescript(SCHEMA)

    @classmethod
    def open(cls, data_dir: Path, *, start: Callable[[], int] = lambda: 0) -> ProgressFile:
        """Opens (or creates) the progress file in ``data_dir``. A new one's cursor is
        ``start()`` (called only then): e.g. the forwarded prefix of a journal written by a hub
        that marked events in it (``sinks.journal.marked_prefix``)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        progress = cls(data_dir / PROGRESS_FILE)
        if progress._conn.execute("SELECT 1 FROM progress").fetchone() is None:
            progress.save(Progress(cursor=start()))
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


def read(data_dir: Path) -> Progress | None:
    """The progress as last saved, read-only (None: no forwarder ever ran here)."""
    path = data_dir / PROGRESS_FILE
    if not path.exists():
        return None
    with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        try:
            row = conn.execute("SELECT cursor, state FROM progress").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return None  # the forwarder is creating it: its first cursor is not saved yet
    return Progress._of(*row) if row is not None else None


def cursor(data_dir: Path) -> int:
    """The cursor as last saved: every event up to it was confirmed (0: no forwarder ran)."""
    progress = read(data_dir)
    return progress.cursor if progress is not None else 0


class ProgressCollector(Collector):
    """The forwarder's metrics, read at scrape time from its progress file, so that the hub's
    ``/metrics`` shows them wherever the forwarder runs (the backlog: ``hub.backlog``)."""

    def __init__(
        self, data_dir: Path, providers: list[str], *, forwarding: bool, shared: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.providers = providers
        self.forwarding = forwarding
        """False without a broker: no broker to be up."""
        self.shared = shared
        """True with a shared index (``HUB_INDEX_URL``): whether the worker reaches it."""

    def collect(self) -> Iterator[Metric]:
        progress = read(self.data_dir) or Progress()
        forwarded = CounterMetricFamily(
            "hub_forwarded_events", "Events the broker confirmed.", labels=("provider",)
        )
        for provider in sorted({*self.providers, *progress.forwarded}):
            forwarded.add_metric((provider,), progress.forwarded.get(provider, 0))
        yield forwarded
        yield HistogramMetricFamily(
            "hub_forward_confirm_duration_seconds",
            "Time from publishing a batch of events to the broker's last confirm.",
            buckets=cumulative((*CONFIRM_BUCKETS, INF), progress.confirm_counts),
            sum_value=progress.confirm_sum,
        )
        if self.shared:
            yield GaugeMetricFamily(
                "hub_shared_index_connected",
                "1 when the pipeline worker's last batch was recorded in the shared index, 0"
                " when it could not be reached (the events wait in the journal).",
                value=float(progress.index_connected),
            )
        if not self.forwarding:  # no such series without a broker: nothing to alert on
            return
        yield GaugeMetricFamily(
            "hub_broker_connected",
            "1 when the forwarder's broker connection is up, 0 otherwise.",
            value=float(progress.broker_connected),
        )
        yield CounterMetricFamily(
            "hub_forward_unchecked_resends",
            "Batches sent again after a crash or a lost connection without reading the stream "
            "first (gone, or too slow): each may have put copies of events on the broker.",
            value=progress.unchecked_resends,
        )
