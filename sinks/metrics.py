"""Prometheus metrics of the hub, on a registry the app owns (never the global one).

Labels are bounded: provider, endpoint (the callback style), outcome, reason, channel, kind,
state. Never numbers, ids or texts.

Only what the hub's serve process counts cheaply is here: a callback's outcome and its time, the
journal's commits, the pull sources' polls (``hub.pull``). What the pipeline worker counts after
the answer comes from its files, wherever it runs: events by state and duplicates from its index
(``sinks.index.IndexCollector``), forwarded events, confirm times and the broker connection from
its progress file (``sinks.progress.ProgressCollector``); the backlog, from that and the journal
(``hub.backlog.BacklogCollector``).
"""

from __future__ import annotations

import math
import platform
import sqlite3
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from sinks.tallies import TallyCounter, TallyHistogram

M = TypeVar("M", bound=MetricWrapperBase)

OUTCOMES = ("accepted", "rejected", "unavailable", "unauthorized", "disconnected")
"""accepted: events journaled, provider acknowledged (a provider's retry too: the pipeline worker
marks it duplicate after the answer, ``hub_duplicate_events_total``); rejected: the provider's
input could not be parsed (their fault);
unavailable: the events could not be made safe (our fault), the provider is told to retry;
unauthorized: wrong secret (reason ``secret``) or source (reason ``source``); disconnected: the
client went away before its request was read whole (HTTP status label 499, nothing kept)."""


PULL_OUTCOMES = (
    *("items", "nothing_new", "retry_later", "credentials_refused", "rate_limited"),
    *("request_refused", "unreadable", "journal_unavailable"),
)
"""A poll's outcomes (``hub_pull_polls_total``): the provider's answer as its reader maps it
(``parsers.pull.base.Outcome``), or ``unreadable`` (no reader understood it: quarantined) and
``journal_unavailable`` (its events could not be made durable: read again at the next poll)."""


class Labelled(Generic[M]):
    """A prometheus_client metric's labelled children, each looked up once: ``labels()``
    validates and locks on every call, and costs more than the increment it precedes. Bounded as
    the labels are. (``sinks.tallies``' metrics are called the same way and keep their own.)"""

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.callbacks = TallyCounter(
            "hub_callbacks",
            "Provider callbacks received, by outcome.",
            ("provider", "endpoint", "outcome", "reason"),
            registry=registry,
        )
        self.latency = TallyHistogram(
            "hub_callback_duration_seconds",
            "Time from a callback's arrival to the provider's answer.",
            ("provider", "endpoint"),
            registry=registry,
            buckets=_FAST,
        )
        self.journal_commit = Histogram(
            "hub_journal_commit_duration_seconds",
            "Time to write and sync one group commit of the journal.",
            registry=registry,
            buckets=_FAST,
        )
        self.journal_ready = Gauge(
            "hub_journal_ready",
            "1 while the journal takes writes; 0 while it cannot (full, unwritable, its file"
            " gone, a commit stalled): callbacks are told to retry.",
            registry=registry,
        )
        self.quarantined = Gauge(
            "hub_quarantine_requests",
            "Refused requests in the quarantine not replayed yet (awaiting inspection, replay"
            " or drop).",
            registry=registry,
        )
        self.http_requests = TallyCounter(
            "hub_http_requests",
            "HTTP requests, by route (the URL pattern, not the URL), method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.http_latency = TallyHistogram(
            "hub_http_request_duration_seconds",
            "HTTP request handling time, by route.",
            ("route",),
            registry=registry,
            buckets=_FAST,
        )
        self.pull_polls = Labelled(
            Counter(
                "hub_pull_polls",
                "Polls of a provider's API by its pull source, by outcome: items, nothing_new,"
                " retry_later, credentials_refused, rate_limited, request_refused; unreadable"
                " (the answer quarantined), journal_unavailable (the events not made durable).",
                ("provider", "outcome"),
                registry=registry,
            )
        )
        self.pull_items = Labelled(
            Counter(
                "hub_pull_items",
                "Items read by polling and journaled (one read again in an overlapping window"
                " is not journaled nor counted again).",
                ("provider",),
                registry=registry,
            )
        )
        self.pull_errors = Labelled(
            Counter(
                "hub_pull_errors",
                "Polls that failed, by outcome and reason (the provider's code, http_<status>,"
                " timeout, connection, a parser's reason for an unreadable answer).",
                ("provider", "outcome", "reason"),
                registry=registry,
            )
        )
        self.pull_configured = Labelled(
            Gauge(
                "hub_pull_configured",
                "1 for a pull source that polls (its credentials are configured), 0 for one off.",
                ("provider",),
                registry=registry,
            )
        )
        self.pull_newest_item = Labelled(
            Gauge(
                "hub_pull_newest_item_timestamp_seconds",
                "The provider's time of the newest item a pull source read (epoch seconds).",
                ("provider",),
                registry=registry,
            )
        )
        self.pull_lag = Gauge(
            "hub_pull_lag_seconds",
            "Seconds since a configured pull source's last successful poll: how far behind"
            " the provider the hub may be (NaN before the first one).",
            ("provider",),
            registry=registry,
        )
        Info("hub_build", "The hub's version.", registry=registry).info(
            {"version": _version(), "python": platform.python_version()}
        )

    def start_at_zero(self, endpoints: Iterable[tuple[str, str]]) -> None:
        """Creates the known label sets, so that rates exist before the first callback."""
        for provider, endpoint in endpoints:
            for outcome in ("accepted", "disconnected"):
                self.callbacks(provider, endpoint, outcome, "")
            self.latency(provider, endpoint)

    def start_pull(self, sources: Iterable[tuple[str, bool]]) -> None:
        """The pull sources' label sets, each provider with a source, configured or not."""
        for provider, configured in sources:
            self.pull_configured(provider).set(1 if configured else 0)
            self.pull_items(provider)
            for outcome in PULL_OUTCOMES:
                self.pull_polls(provider, outcome)

    def watch_pull(self, provider: str, last_success: Callable[[], float | None]) -> None:
        """``hub_pull_lag_seconds`` of a configured source: asks ``last_success`` (epoch
        seconds, or None) at each scrape."""

        def lag() -> float:
            last = last_success()
            return math.nan if last is None else max(0.0, time.time() - last)

        self.pull_lag.labels(provider).set_function(lag)

    def count_quarantine(self, waiting: Callable[[], int]) -> None:
        """``hub_quarantine_requests`` asks ``waiting`` at each scrape: ``hub quarantine replay``
        and ``drop`` change the quarantine from processes of their own. NaN while the journal
        cannot be read (its file gone: ``hub_journal_ready`` says so)."""

        def read() -> float:
            try:
                return float(waiting())
            except (sqlite3.Error, OSError):
                return math.nan

        self.quarantined.set_function(read)


def _version() -> str:
    try:
        return metadata.version("callback-hub")
    except metadata.PackageNotFoundError:
        return "unknown"
