"""What waits after the acknowledgement: the journal's events after the forwarder's cursor (to
be forwarded), and after the pipeline worker's index cursor (to be processed at all), the one
place where the journal and the worker's files are joined (none opens another's file), for
``/metrics`` and ``hub journal stats`` alike.

Without a broker nothing is to be forwarded: that backlog is empty and says forwarding is off
(the journal keeps every event until retention, whatever a past forwarder's cursor says). The
worker processes every event, with a broker or without: its backlog always counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.settings import Settings
from sinks import index, progress
from sinks import journal as store


@dataclass(frozen=True, slots=True)
class Backlog:
    forwarding: bool
    """Events go somewhere from the journal: a broker is configured (:func:`of`); the worker
    processes them always (:func:`unprocessed`)."""
    events: int
    """Events journaled and not yet forwarded (0 when forwarding is off), or not yet
    processed."""
    oldest: float | None
    """Reception time (epoch seconds) of the oldest of them (None: none waits)."""

    def age(self, now: float) -> float | None:
        """Seconds the oldest event has waited (None: none waits)."""
        return max(now - self.oldest, 0.0) if self.oldest is not None else None


def forwarding(settings: Settings) -> bool:
    """The configured hub forwards its journal: it has a broker."""
    return settings.rabbitmq_url is not None


def of(data_dir: Path, journal: Path, *, forwarding: bool) -> Backlog:
    """The backlog of ``journal``, forwarded by the forwarder whose progress is in ``data_dir``."""
    if not forwarding:
        return Backlog(False, 0, None)
    after = store.after(journal, progress.cursor(data_dir))
    return Backlog(True, after.events, after.first_received_at)


def unprocessed(data_dir: Path, journal: Path) -> Backlog:
    """The events of ``journal`` the pipeline worker whose index is in ``data_dir`` has not
    processed yet (deduplicated, counted, indexed), with a broker or without. Exact: retention
    deletes nothing the worker has not processed."""
    after = store.after(journal, index.read(data_dir).cursor)
    return Backlog(True, after.events, after.first_received_at)


class BacklogCollector(Collector):
    """``hub_journal_backlog_events`` and ``hub_journal_oldest_unforwarded_age_seconds`` (what
    waits for the broker), ``hub_worker_backlog_events`` and
    ``hub_worker_oldest_unprocessed_age_seconds`` (what waits for the pipeline worker), read at
    scrape time."""

    def __init__(self, data_dir: Path, journal: Path, *, forwarding: bool) -> None:
        self.data_dir = data_dir
        self.journal = journal
        self.forwarding = forwarding

    def collect(self) -> Iterator[Metric]:
        backlog = of(self.data_dir, self.journal, forwarding=self.forwarding)
        now = time.time()
        yield GaugeMetricFamily(
            "hub_journal_backlog_events",
            "Events journaled and not yet forwarded to the broker.",
            value=backlog.events,
        )
        yield GaugeMetricFamily(
            "hub_journal_oldest_unforwarded_age_seconds",
            "Age of the oldest event not yet forwarded (0 when none waits).",
            value=backlog.age(now) or 0.0,
        )
        behind = unprocessed(self.data_dir, self.journal)
        yield GaugeMetricFamily(
            "hub_worker_backlog_events",
            "Events journaled and not yet processed by the pipeline worker (deduplicated,"
            " counted, indexed), with a broker or without.",
            value=behind.events,
        )
        yield GaugeMetricFamily(
            "hub_worker_oldest_unprocessed_age_seconds",
            "Age of the oldest event the pipeline worker has not processed yet (0 when none"
            " waits).",
            value=behind.age(now) or 0.0,
        )
