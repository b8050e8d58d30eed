"""Prometheus metrics of the hub, on a registry the app owns (never the global one).

Labels are bounded: provider, endpoint (the callback style), outcome, reason, channel, kind,
state. Never numbers, ids or texts.

Only what the callbacks' side counts cheaply is here: a callback's outcome and its time, the
journal's commits. What the pipeline worker counts after the answer comes from its files,
wherever it runs: events by state and duplicates from its index (``sinks.index.IndexCollector``),
forwarded events, confirm times and the broker connection from its progress file
(``sinks.progress.ProgressCollector``); the backlog, from that and the journal
(``hub.backlog.BacklogCollector``).
"""

from __future__ import annotations

import math
import platform
import sqlite3
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

OUTCOMES = ("accepted", "rejected", "unavailable", "unauthorized", "disconnected")
"""accepted: events journaled, provider acknowledged (a provider's retry too: the pipeline worker
marks it duplicate after the answer, ``hub_duplicate_events_total``); rejected: the provider's
input could not be parsed (their fault);
unavailable: the events could not be made safe (our fault), the provider is told to retry;
unauthorized: wrong secret (reason ``secret``) or source (reason ``source``); disconnected: the
client went away before its request was read whole (HTTP status label 499, nothing kept)."""


class Labelled(Generic[M]):
    """A metric's labelled children, each looked up once: ``labels()`` validates and locks on
    every call, and costs more than the increment it precedes. Bounded as the labels are."""

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
        self.callbacks = Labelled(
            Counter(
                "hub_callbacks",
                "Provider callbacks received, by outcome.",
                ("provider", "endpoint", "outcome", "reason"),
                registry=registry,
            )
        )
        self.latency = Labelled(
            Histogram(
                "hub_callback_duration_seconds",
                "Time from a callback's arrival to the provider's answer.",
                ("provider", "endpoint"),
                registry=registry,
                buckets=_FAST,
            )
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
        self.http_requests = Labelled(
            Counter(
                "hub_http_requests",
                "HTTP requests, by route (the URL pattern, not the URL), method and status.",
                ("route", "method", "status"),
                registry=registry,
            )
        )
        self.http_latency = Labelled(
            Histogram(
                "hub_http_request_duration_seconds",
                "HTTP request handling time, by route.",
                ("route",),
                registry=registry,
                buckets=_FAST,
            )
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
