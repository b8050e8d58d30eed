"""Prometheus metrics of the hub, on a registry the app owns (never the global one).

Labels are bounded: provider, endpoint (the callback style), outcome, reason, channel, kind,
state. Never numbers, ids or texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from hub.models import Event

OUTCOMES = ("accepted", "rejected", "unavailable")
"""accepted: events safe, provider acknowledged; rejected: the provider's input could not be
parsed (their fault); unavailable: the events could not be made safe (our fault)."""


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.callbacks = Counter(
            "hub_callbacks",
            "Provider callbacks received, by outcome.",
            ("provider", "endpoint", "outcome", "reason"),
            registry=registry,
        )
        self.events = Counter(
            "hub_events",
            "Events made safe (journal committed or broker confirmed).",
            ("provider", "channel", "kind", "state"),
            registry=registry,
        )
        self.latency = Histogram(
            "hub_callback_duration_seconds",
            "Time from a callback's arrival to the provider's answer.",
            ("provider", "endpoint"),
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def start_at_zero(self, endpoints: Iterable[tuple[str, str]]) -> None:
        """Creates the known label sets, so that rates exist before the first callback."""
        for provider, endpoint in endpoints:
            self.callbacks.labels(provider, endpoint, "accepted", "")
            self.latency.labels(provider, endpoint)

    def observe_events(self, events: Sequence[Event]) -> None:
        for e in events:
            d = e.data
            self.events.labels(d.provider.value, d.channel.value, d.kind.value, d.state.value).inc()
