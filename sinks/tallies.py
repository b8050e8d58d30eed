"""Counters and histograms for the callbacks' path: plain numbers added on the event loop's
thread, read by a collector at scrape time.

prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock, check that the metric
is observable and walk the buckets in Python, for metrics that any thread may change: 1.1 and
1.8 µs each on the benchmark's machine, and the hub makes four such observations a callback
(its outcome and time, its HTTP status and time), about 31,000 instructions of the 468,700 a
GET costs (callgrind of the whole server, README's Performance). These do the same counting in
an attribute addition (a counter) and a ``bisect`` (a histogram), and give Prometheus the same
series (``_total`` and ``_created``; ``_bucket``, ``_count``, ``_sum`` and ``_created``), with
the same names, help and labels.

Only for metrics changed from one thread (the hub's loop): two threads adding to one child at
once could lose a count. A scrape reads them from another thread (``hub.handlers.metrics``) and
may see a histogram's sum one observation ahead of its count, as prometheus_client's may.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

INF = float("inf")


class CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        """Observations by bucket, not cumulative (the last bucket is +Inf)."""
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.sum += amount
        self.counts[bisect_left(self.bounds, amount)] += 1  # the first bound >= amount


C = TypeVar("C", CounterChild, HistogramChild)


class _Tallies(Collector, Generic[C]):
    """A metric's children by label values; registered in ``registry`` as a collector.

    ``metric(*values)`` is ``metric.labels(*values)``: the child of those label values, made on
    first use."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        registry.register(self)

    def labels(self, *values: str) -> C:
        child = self._children.get(values)
        if child is None:
            self._labels(values)
            child = self._children[values] = self._child()
        return child

    __call__ = labels

    def _child(self) -> C:
        raise NotImplementedError

    def _labels(self, values: tuple[str, ...]) -> dict[str, str]:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
        return dict(zip(self.labelnames, values, strict=True))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(dict(self._children))

    def describe(self) -> Iterator[Metric]:
        yield from self._families({})

    def _families(self, children: dict[tuple[str, ...], C]) -> Iterator[Metric]:
        raise NotImplementedError


class TallyCounter(_Tallies[CounterChild]):
    """A counter (``<name>_total``) with labels: ``labels(*values).inc()``."""

    def _child(self) -> CounterChild:
        return CounterChild()

    def _families(self, children: dict[tuple[str, ...], CounterChild]) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in children.items():
            family.add_metric(values, child.value, created=child.created)
        yield family


class TallyHistogram(_Tallies[HistogramChild]):
    """A histogram with labels and fixed buckets: ``labels(*values).observe(seconds)``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)
        self.bounds = (*sorted(float(b) for b in buckets if b != INF), INF)

    def _child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def _families(self, children: dict[tuple[str, ...], HistogramChild]) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in children.items():
            family.add_metric(values, cumulative(self.bounds, child.counts), child.sum)
            created = Sample(f"{self.name}_created", self._labels(values), child.created)
            family.samples.append(created)
        yield family


def cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Counts by bucket (not cumulative, the last one +Inf) as a histogram's ``le`` buckets."""
    total = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        buckets.append((floatToGoString(bound), total))  # type: ignore[no-untyped-call]
    return buckets
